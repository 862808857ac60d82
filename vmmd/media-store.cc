#include "vmmd/media-store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/unique-fd.h"
#include "core/machine/machine-config.h"
#include "vmmd/datastore.h"

namespace cellvisor {

namespace fs = std::filesystem;

MediaKind parseMediaKind(const std::string& text) {
  if (text == "iso") return MediaKind::ISO;
  if (text == "img") return MediaKind::IMG;
  throw DatastoreError("unknown media kind '" + text + "' (iso or img)");
}

fs::path MediaStore::directory(MediaKind kind) const {
  return root_ / (kind == MediaKind::ISO ? ".iso" : ".img");
}

std::vector<MediaFile> MediaStore::list(MediaKind kind) const {
  std::vector<MediaFile> files;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(directory(kind), error)) {
    if (!entry.is_regular_file() || entry.path().filename().string().starts_with(".")) continue;
    files.push_back({entry.path().filename().string(), entry.file_size()});
  }
  std::sort(files.begin(), files.end(),
            [](const MediaFile& a, const MediaFile& b) { return a.name < b.name; });
  return files;
}

std::string MediaStore::import(MediaKind kind, const fs::path& source) const {
  if (!source.is_absolute())
    throw DatastoreError("give the medium's absolute path, not '" + source.string() + "'");
  struct stat st {};
  if (::stat(source.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    throw DatastoreError("no file '" + source.string() + "' to import");
  }
  std::string name = source.filename().string();
  // The name becomes a path in the datastore: the same rule as VM names.
  if (!isValidVmName(name)) throw DatastoreError("'" + name + "' is not usable as a media name");
  fs::path target = directory(kind) / name;
  if (fs::exists(target)) throw DatastoreError(name + " is already in " + directory(kind).string());
  fs::create_directories(directory(kind));
  // Copied under a hidden name and renamed when complete: a crash never
  // leaves a half-copied medium that looks whole.
  fs::path partial = directory(kind) / ("." + name + ".partial");
  fs::remove(partial);
  copyFileSparse(source, partial);
  fs::rename(partial, target);
  return name;
}

fs::path MediaStore::resolve(const std::string& nameOrPath) const {
  if (nameOrPath.find('/') != std::string::npos) {
    fs::path path(nameOrPath);
    if (!path.is_absolute() || !fs::is_regular_file(path))
      throw DatastoreError("no medium at '" + nameOrPath + "'");
    return path;
  }
  if (!isValidVmName(nameOrPath)) throw DatastoreError("'" + nameOrPath + "' is not a media name");
  for (MediaKind kind : {MediaKind::ISO, MediaKind::IMG}) {
    fs::path candidate = directory(kind) / nameOrPath;
    if (fs::is_regular_file(candidate)) return candidate;
  }
  throw DatastoreError("no medium '" + nameOrPath + "' in " + directory(MediaKind::ISO).string() + " or " +
                       directory(MediaKind::IMG).string());
}

MediaContent detectMediaContent(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw DatastoreError("cannot open " + path.string());
  char head[0x206] = {};
  ssize_t got = ::pread(fd.get(), head, sizeof(head), 0);
  if (got >= 4 && std::memcmp(head,
                              "\x7f"
                              "ELF",
                              4) == 0)
    return MediaContent::KERNEL;
  if (got >= 0x206 && std::memcmp(head + 0x202, "HdrS", 4) == 0) return MediaContent::KERNEL;
  char volume[5] = {};
  if (::pread(fd.get(), volume, sizeof(volume), 16 * 2048 + 1) == 5 && std::memcmp(volume, "CD001", 5) == 0) {
    return MediaContent::ISO9660;
  }
  throw DatastoreError(path.string() + " is neither an ISO 9660 image nor a kernel");
}

}  // namespace cellvisor
