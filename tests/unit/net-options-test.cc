// virtio-net's slot options: what a user types after `-s N,virtio-net,`.
#include "servers/virtio-net/net-options.h"

#include <gtest/gtest.h>

namespace cellvisor {
namespace {

TEST(NetOptions, ParsesTapMacQueueSizeAndPolling) {
  NetOptions options = parseNetOptions("tap0,mac=02:AB:cd:00:11:22,queue-size=512,poll-us=20");
  EXPECT_EQ(options.tap, "tap0");
  EXPECT_TRUE(options.macGiven);
  EXPECT_EQ(formatMac(options.mac), "02:ab:cd:00:11:22");
  EXPECT_EQ(options.queueSize, 512);
  EXPECT_EQ(options.pollMicros, 20u);
  EXPECT_EQ(parseNetOptions("cvtap%d").tap, "cvtap%d") << "the kernel numbers it";
}

TEST(NetOptions, BadValuesAreNamed) {
  struct Case {
    const char* text;
    const char* message;
  };
  for (auto [text, message] :
       {Case{"", "no tap"}, Case{"../tap", "bad tap name"},
        Case{"tap0,mac=01:00:5e:00:00:01", "not a unicast MAC"},
        Case{"tap0,mac=zz:00:00:00:00:00", "not a unicast MAC"},
        Case{"tap0,mac=02:00:00:00:00:00:00", "not a unicast MAC"},
        Case{"tap0,queue-size=100", "power of two"}, Case{"tap0,poll-us=5000", "0-1000"},
        Case{"tap0,speed=10G", "unknown option 'speed'"}}) {
    try {
      parseNetOptions(text);
      ADD_FAILURE() << text << " was accepted";
    } catch (const std::invalid_argument& error) {
      EXPECT_NE(std::string(error.what()).find(message), std::string::npos) << text << ": " << error.what();
    }
  }
}

TEST(NetOptions, DerivedMacsAreStableLocalAndUnicast) {
  auto mac = derivedMac("web/network0");
  EXPECT_EQ(mac, derivedMac("web/network0"));
  EXPECT_NE(mac, derivedMac("web/network1"));
  EXPECT_EQ(mac[0] & 0x03, 0x02) << "locally administered, unicast";
  EXPECT_EQ(formatMac(derivedMac("web/network0")), "02:63:" + formatMac(mac).substr(6));
}

}  // namespace
}  // namespace cellvisor
