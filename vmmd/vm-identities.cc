#include "vmmd/vm-identities.h"

#include <fmt/format.h>

#include <charconv>
#include <set>

#include "vmmd/datastore.h"
#include "vmmd/system-config.h"

namespace cellvisor {
namespace {

bool parseUid(const std::string& text, uid_t& value) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size();
}

}  // namespace

VmIdentity VmIdentities::acquire(const std::string& name, size_t devices) {
  SystemConfig config = SystemConfig::load(systemConfig_);
  if (devices + 1 > UIDS_PER_VM) {
    throw DatastoreError(fmt::format("{}: {} device servers; at most {}", name, devices, UIDS_PER_VM - 1));
  }
  uid_t first = DEFAULT_FIRST;
  uid_t last = DEFAULT_LAST;
  if (auto range = config.get("vm_uid_range")) {
    auto dash = range->find('-');
    if (dash == std::string::npos || !parseUid(range->substr(0, dash), first) ||
        !parseUid(range->substr(dash + 1), last) || first == 0 || last < first ||
        last - first + 1 < UIDS_PER_VM || last >= 0xffff'fffe) {
      throw DatastoreError(fmt::format(
          "vm_uid_range=\"{}\": expected FIRST-LAST, neither 0 nor 4294967294 up, at least {} uids", *range,
          UIDS_PER_VM));
    }
  }
  if (auto held = held_.find(name); held != held_.end()) return {held->second, UIDS_PER_VM};
  std::set<uid_t> taken;
  for (const auto& [vm, block] : held_) taken.insert(block);
  for (uint64_t block = first; block + UIDS_PER_VM - 1 <= last; block += UIDS_PER_VM) {
    if (taken.count(static_cast<uid_t>(block)) != 0) continue;
    held_[name] = static_cast<uid_t>(block);
    return {static_cast<uid_t>(block), UIDS_PER_VM};
  }
  throw DatastoreError(fmt::format("vm_uid_range {}-{}: every block of {} uids is taken by a running VM",
                                   first, last, UIDS_PER_VM));
}

void VmIdentities::release(const std::string& name) {
  held_.erase(name);
}

}  // namespace cellvisor
