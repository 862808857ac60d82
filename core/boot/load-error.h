// A guest image that cannot be booted. The message names the file and what is
// wrong with it; loaders throw this and only this for bad input.
#pragma once

#include <stdexcept>
#include <string>

namespace cellvisor {

class LoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace cellvisor
