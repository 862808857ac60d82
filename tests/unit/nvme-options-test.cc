// NVMe's slot options: what a user types after `-s N,nvme,` (bhyve's spelling).
#include "servers/nvme/nvme-options.h"

#include <gtest/gtest.h>

namespace cellvisor {
namespace {

TEST(NvmeOptions, ParsesBhyvesOptions) {
  NvmeOptions options = parseNvmeOptions(
      "disk.img,maxq=4,qsz=256,ioslots=16,sectsz=4096,ser=SN42,eui64=0x0102030405060708,dsm=disable,ro");
  EXPECT_EQ(options.path, "disk.img");
  EXPECT_EQ(options.maxQueues, 4);
  EXPECT_EQ(options.queueSize, 256u);
  EXPECT_EQ(options.ioSlots, 16u);
  EXPECT_EQ(options.sectorSize, 4096u);
  EXPECT_EQ(options.serial, "SN42");
  EXPECT_EQ(options.eui64, 0x0102030405060708ull);
  EXPECT_EQ(options.dsm, NvmeOptions::Dsm::DISABLE);
  EXPECT_TRUE(options.readOnly);
  EXPECT_EQ(parseNvmeOptions("ram=64").ramMiB, 64u) << "bhyve's ram= in place of a path";
  NvmeOptions defaults = parseNvmeOptions("disk.img");
  EXPECT_EQ(defaults.maxQueues, 16);
  EXPECT_EQ(defaults.queueSize, 2048u);
}

TEST(NvmeOptions, BadValuesAreNamed) {
  struct Case {
    const char* text;
    const char* message;
  };
  for (auto [text, message] :
       {Case{"", "no disk image path"}, Case{"disk.img,ram=8", "both given"},
        Case{"disk.img,maxq=0", "maxq: 1 to 64"}, Case{"disk.img,maxq=65", "maxq: 1 to 64"},
        Case{"disk.img,qsz=1", "qsz: 2 to 4096"}, Case{"disk.img,sectsz=1024", "512, 4096 or 8192"},
        Case{"disk.img,ser=012345678901234567890", "1 to 20 characters"},
        Case{"disk.img,dsm=sometimes", "auto, enable or disable"}, Case{"disk.img,maxq=many", "not a number"},
        Case{"disk.img,eui64=0xzz", "not a number"}, Case{"disk.img,speed=fast", "unknown option 'speed'"}}) {
    try {
      parseNvmeOptions(text);
      ADD_FAILURE() << text << ": accepted";
    } catch (const std::invalid_argument& error) {
      EXPECT_NE(std::string(error.what()).find(message), std::string::npos) << text << ": " << error.what();
      EXPECT_EQ(std::string(error.what()).rfind("nvme: ", 0), 0u) << error.what();
    }
  }
}

}  // namespace
}  // namespace cellvisor
