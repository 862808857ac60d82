// The datastore's install media, as vm-bhyve keeps them: ISO images in
// `.iso/`, disk images and kernels in `.img/`. Files are imported from local
// paths (this host reaches no network), and `vmctl install` boots a VM from
// one of them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace cellvisor {

enum class MediaKind { ISO, IMG };
// "iso" or "img"; throws DatastoreError for anything else.
MediaKind parseMediaKind(const std::string& text);

struct MediaFile {
  std::string name;
  uint64_t size;
};

// What an install medium holds, from its first bytes.
enum class MediaContent { ISO9660, KERNEL };

class MediaStore {
 public:
  explicit MediaStore(std::filesystem::path datastoreRoot) : root_(std::move(datastoreRoot)) {}

  std::vector<MediaFile> list(MediaKind kind) const;
  // Copies a local file in (crash-safe, holes kept); returns its name there.
  // Throws DatastoreError when the source is missing or the name is taken.
  std::string import(MediaKind kind, const std::filesystem::path& source) const;
  // A medium by name (looked up in .iso/, then .img/) or by absolute path.
  // Throws DatastoreError if there is no such file.
  std::filesystem::path resolve(const std::string& nameOrPath) const;

 private:
  std::filesystem::path directory(MediaKind kind) const;
  std::filesystem::path root_;
};

// ISO 9660 ("CD001" at sector 16) or a kernel (ELF, or a bzImage's "HdrS");
// throws DatastoreError naming the file otherwise.
MediaContent detectMediaContent(const std::filesystem::path& path);

}  // namespace cellvisor
