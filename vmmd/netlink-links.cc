#include "vmmd/netlink-links.h"

#include <net/if.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>

namespace cellvisor {
namespace {

// libnl objects are reference counted: each wrapper drops its reference.
struct LinkPut {
  void operator()(rtnl_link* link) const { rtnl_link_put(link); }
};
using Link = std::unique_ptr<rtnl_link, LinkPut>;
struct CachePut {
  void operator()(nl_cache* cache) const { nl_cache_free(cache); }
};
struct AddrPut {
  void operator()(nl_addr* address) const { nl_addr_put(address); }
};
struct RtAddrPut {
  void operator()(rtnl_addr* address) const { rtnl_addr_put(address); }
};

void check(int result, const std::string& what) {
  if (result < 0) throw NetlinkError(what + ": " + nl_geterror(result));
}

Link fresh() {
  Link link(rtnl_link_alloc());
  if (!link) throw NetlinkError("out of memory");
  return link;
}

// The kernel's view of link `name` (changes need its index).
Link get(nl_sock* socket, const std::string& name) {
  rtnl_link* raw = nullptr;
  check(rtnl_link_get_kernel(socket, 0, name.c_str(), &raw), name);
  return Link(raw);
}

}  // namespace

NetlinkLinks::NetlinkLinks() : socket_(nl_socket_alloc()) {
  if (socket_ == nullptr) throw NetlinkError("out of memory");
  int result = nl_connect(socket_, NETLINK_ROUTE);
  if (result < 0) {
    nl_socket_free(socket_);
    throw NetlinkError(std::string("rtnetlink: ") + nl_geterror(result));
  }
}

NetlinkLinks::~NetlinkLinks() {
  nl_socket_free(socket_);
}

std::optional<LinkState> NetlinkLinks::find(const std::string& name) {
  rtnl_link* raw = nullptr;
  int result = rtnl_link_get_kernel(socket_, 0, name.c_str(), &raw);
  if (result == -NLE_NODEV || result == -NLE_OBJ_NOTFOUND) return std::nullopt;
  check(result, name);
  Link link(raw);
  const char* kind = rtnl_link_get_type(link.get());
  return LinkState{name, (rtnl_link_get_flags(link.get()) & IFF_UP) != 0, rtnl_link_get_mtu(link.get()),
                   kind ? kind : ""};
}

void NetlinkLinks::create(const std::string& name, const std::string& kind) {
  Link link = fresh();
  rtnl_link_set_name(link.get(), name.c_str());
  check(rtnl_link_set_type(link.get(), kind.c_str()), name + ": link kind " + kind);
  rtnl_link_set_flags(link.get(), IFF_UP);
  check(rtnl_link_add(socket_, link.get(), NLM_F_CREATE | NLM_F_EXCL), "create " + name);
}

void NetlinkLinks::remove(const std::string& name) {
  check(rtnl_link_delete(socket_, get(socket_, name).get()), "delete " + name);
}

void NetlinkLinks::setUp(const std::string& name) {
  Link change = fresh();
  Link target = get(socket_, name);
  rtnl_link_set_flags(change.get(), IFF_UP);
  check(rtnl_link_change(socket_, target.get(), change.get(), 0), "bring up " + name);
}

void NetlinkLinks::setMtu(const std::string& name, unsigned mtu) {
  Link change = fresh();
  Link target = get(socket_, name);
  rtnl_link_set_mtu(change.get(), mtu);
  check(rtnl_link_change(socket_, target.get(), change.get(), 0), "set the MTU of " + name);
}

void NetlinkLinks::addAddress(const std::string& name, const std::string& cidr) {
  int index = static_cast<int>(if_nametoindex(name.c_str()));
  if (index == 0) throw NetlinkError(name + ": no such interface");
  nl_addr* raw = nullptr;
  check(nl_addr_parse(cidr.c_str(), AF_UNSPEC, &raw), "address " + cidr);
  std::unique_ptr<nl_addr, AddrPut> local(raw);
  std::unique_ptr<rtnl_addr, RtAddrPut> address(rtnl_addr_alloc());
  if (!address) throw NetlinkError("out of memory");
  rtnl_addr_set_ifindex(address.get(), index);
  check(rtnl_addr_set_local(address.get(), local.get()), "address " + cidr);
  int result = rtnl_addr_add(socket_, address.get(), 0);
  if (result == -NLE_EXIST) return;  // Already there: what was asked for.
  check(result, "add " + cidr + " to " + name);
}

void NetlinkLinks::attach(const std::string& port, const std::string& bridge) {
  Link master = get(socket_, bridge);
  Link slave = get(socket_, port);
  check(rtnl_link_enslave(socket_, master.get(), slave.get()), "add " + port + " to " + bridge);
  setUp(port);
}

void NetlinkLinks::detach(const std::string& port) {
  Link slave = get(socket_, port);
  check(rtnl_link_release(socket_, slave.get()), "take " + port + " out of its bridge");
}

std::vector<std::string> NetlinkLinks::ports(const std::string& bridge) {
  int master = static_cast<int>(if_nametoindex(bridge.c_str()));
  if (master == 0) return {};
  nl_cache* raw = nullptr;
  check(rtnl_link_alloc_cache(socket_, AF_UNSPEC, &raw), "list links");
  std::unique_ptr<nl_cache, CachePut> cache(raw);
  std::vector<std::string> names;
  for (nl_object* object = nl_cache_get_first(cache.get()); object != nullptr;
       object = nl_cache_get_next(object)) {
    auto* link = reinterpret_cast<rtnl_link*>(object);
    if (rtnl_link_get_master(link) == master) names.push_back(rtnl_link_get_name(link));
  }
  return names;
}

}  // namespace cellvisor
