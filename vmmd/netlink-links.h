// Linux network links through rtnetlink (libnl-route): what virtual
// switches are made of. Bridges are created, addressed, brought up and
// deleted; ports (host NICs now, VM taps with virtio-net) join and leave.
// Every failure throws NetlinkError naming the link and the kernel's reason.
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

struct nl_sock;

namespace cellvisor {

class NetlinkError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LinkState {
  std::string name;
  bool up = false;
  unsigned mtu = 0;
  std::string kind;  // "bridge", "dummy", "veth", "tun", "" for a plain NIC
};

class NetlinkLinks {
 public:
  NetlinkLinks();  // Connects to rtnetlink.
  ~NetlinkLinks();
  NetlinkLinks(const NetlinkLinks&) = delete;
  NetlinkLinks& operator=(const NetlinkLinks&) = delete;

  std::optional<LinkState> find(const std::string& name);
  // A link of `kind` ("bridge", "dummy"...), brought up. Throws if it exists.
  void create(const std::string& name, const std::string& kind);
  void remove(const std::string& name);
  void setUp(const std::string& name);
  void setMtu(const std::string& name, unsigned mtu);
  // Adds an address in CIDR form, e.g. "10.0.0.1/24".
  void addAddress(const std::string& name, const std::string& cidr);
  // Makes `port` a port of bridge `bridge`, or takes it out of any.
  void attach(const std::string& port, const std::string& bridge);
  void detach(const std::string& port);
  // The links whose master is `bridge`, by name.
  std::vector<std::string> ports(const std::string& bridge);

 private:
  nl_sock* socket_;
};

}  // namespace cellvisor
