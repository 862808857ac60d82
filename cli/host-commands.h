// vmctl's verbs about the host rather than one VM's life, in vm-bhyve's
// words: iso and img (install media), install, datastore and switch.
#pragma once

#include <kj/async.h>

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "control.capnp.h"

namespace cellvisor::cli {

class HostCommands {
 public:
  // Adds the subcommands to `app`; `json` is the shared --json flag.
  HostCommands(CLI::App& app, bool& json);
  // Runs the parsed subcommand if it is one of ours: its exit status, or
  // nothing when another subcommand was given. Throws kj::Exception for
  // errors vmmd reports.
  std::optional<int> run(proto::Vmmd::Client& vmmd, kj::WaitScope& waitScope);

 private:
  int media(proto::Vmmd::Client& vmmd, kj::WaitScope& waitScope, const std::string& kind);
  int datastore(proto::Vmmd::Client& vmmd, kj::WaitScope& waitScope);
  int virtualSwitch(proto::Vmmd::Client& vmmd, kj::WaitScope& waitScope);

  bool& json_;
  CLI::App* iso_;
  CLI::App* img_;
  CLI::App* install_;
  CLI::App* datastore_;
  CLI::App* datastoreList_;
  CLI::App* datastoreAdd_;
  CLI::App* datastoreRemove_;
  CLI::App* switch_;
  CLI::App* switchList_;
  CLI::App* switchCreate_;
  CLI::App* switchAdd_;
  CLI::App* switchRemove_;
  CLI::App* switchDestroy_;
  std::string name_;
  std::string file_;
  std::string path_;
  std::string type_ = "standard";
  std::string bridge_;
  std::string address_;
  unsigned mtu_ = 0;
  std::string port_;
};

}  // namespace cellvisor::cli
