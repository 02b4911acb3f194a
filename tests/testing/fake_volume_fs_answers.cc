// FakeVolumeFs's answers as a VolumeFs: listing, lookups, change tracking, InodePath
// (its set-up and transactions: fake_volume_fs.cc).

#include <cerrno>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"
#include "tests/testing/fake_volume_fs.h"
#include "tests/testing/fake_volume_fs_node.h"

namespace btrdupd {
namespace testing {

class FakeVolumeFs::Dir : public VolumeDir {
 public:
  Dir(FakeVolumeFs* fs, std::string path, std::shared_ptr<Node> node)
      : fs_(fs), path_(std::move(path)), node_(std::move(node)), self_(fs->StatOf(*node_)) {}

  const VolumeStat& self() const override { return self_; }

  absl::StatusOr<std::vector<VolumeDirEntry>> ReadEntries() override {
    ++fs_->dirs_read_;
    std::vector<VolumeDirEntry> out;
    for (const auto& [name, child] : node_->children) {
      out.push_back(VolumeDirEntry{name, child->ino, child->type});
    }
    return out;
  }

  absl::StatusOr<VolumeStat> StatEntry(absl::string_view name) override {
    ++fs_->entries_statted_;
    const std::string path = JoinVolumePath(path_, name);
    if (auto it = fs_->stat_failures_.find(path); it != fs_->stat_failures_.end()) {
      return it->second;
    }
    auto it = node_->children.find(std::string(name));
    if (it == node_->children.end()) {
      return ErrnoToStatus(ENOENT, absl::StrCat("stat /fake/", path));
    }
    return fs_->StatOf(*it->second);
  }

  // Every listed regular file but those a test made fail (StatEntry says how).
  absl::StatusOr<absl::flat_hash_map<uint64_t, VolumeStat>> StatRegularFiles(
      const std::vector<VolumeDirEntry>& entries) override {
    ++fs_->bulk_stats_;
    absl::flat_hash_map<uint64_t, VolumeStat> out;
    for (const VolumeDirEntry& entry : entries) {
      if (entry.type != EntryType::kRegular ||
          fs_->stat_failures_.contains(JoinVolumePath(path_, entry.name))) {
        continue;
      }
      auto it = node_->children.find(entry.name);
      if (it == node_->children.end() || it->second->ino != entry.ino ||
          it->second->type != EntryType::kRegular) {
        continue;
      }
      out.emplace(entry.ino, fs_->StatOf(*it->second));
    }
    return out;
  }

 private:
  FakeVolumeFs* fs_;
  std::string path_;
  std::shared_ptr<Node> node_;
  VolumeStat self_;
};

bool FakeVolumeFs::FindPath(const Node* from, const Node* target, const std::string& prefix,
                            std::string* out) const {
  if (from == target) {
    *out = prefix;
    return true;
  }
  for (const auto& [name, child] : from->children) {
    if (child->type != EntryType::kDirectory) continue;
    if (FindPath(child.get(), target, JoinVolumePath(prefix, name), out)) return true;
  }
  return false;
}

absl::StatusOr<std::vector<VolumeSubvolume>> FakeVolumeFs::ListSubvolumes() {
  std::vector<VolumeSubvolume> out;
  for (const auto& [id, sub] : subvolumes_) {
    VolumeSubvolume info;
    if (!FindPath(root_.get(), sub.root.get(), "", &info.path)) continue;  // hidden
    info.id = id;
    info.uuid = sub.uuid;
    info.parent_uuid = sub.parent_uuid;
    info.read_only = sub.read_only;
    info.generation = sub.generation;
    info.created_generation = sub.created_generation;
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<VolumeDir>> FakeVolumeFs::OpenDir(absl::string_view path) {
  const std::string key(path);
  if (auto it = open_failures_.find(key); it != open_failures_.end()) return it->second;
  std::shared_ptr<Node> node = Lookup(path);
  if (node == nullptr) return ErrnoToStatus(ENOENT, absl::StrCat("open /fake/", path));
  if (node->type != EntryType::kDirectory) {
    return ErrnoToStatus(ENOTDIR, absl::StrCat("open /fake/", path));
  }
  return std::unique_ptr<VolumeDir>(new Dir(this, key, node));
}

absl::StatusOr<VolumeStat> FakeVolumeFs::Stat(absl::string_view path) {
  const std::string key(path);
  ++paths_statted_;
  if (auto it = stat_failures_.find(key); it != stat_failures_.end()) return it->second;
  std::shared_ptr<Node> node = Lookup(path);
  if (node == nullptr) return ErrnoToStatus(ENOENT, absl::StrCat("stat /fake/", path));
  return StatOf(*node);
}

std::shared_ptr<FakeVolumeFs::Node> FakeVolumeFs::SubvolumeRootAt(
    absl::string_view path) const {
  std::shared_ptr<Node> root = Lookup(path);
  if (root == nullptr || !subvol_by_dev_.count(root->dev)) return nullptr;
  return root;
}

absl::StatusOr<std::vector<InodeChange>> FakeVolumeFs::ChangedInodesSince(
    absl::string_view subvol_path, uint64_t generation) {
  std::shared_ptr<Node> root = SubvolumeRootAt(subvol_path);
  if (root == nullptr) {
    return ErrnoToStatus(ENOENT, absl::StrCat("no subvolume at /fake/", subvol_path));
  }
  std::map<uint64_t, InodeChange> found;
  std::function<void(const Node&)> visit = [&](const Node& node) {
    if (node.transid > generation) {
      InodeChange change;
      change.ino = node.ino;
      change.transid = node.transid;
      change.size = node.size;
      change.mtime_ns = node.mtime_ns;
      change.ctime_ns = node.ctime_ns;
      change.is_dir = node.type == EntryType::kDirectory;
      change.is_regular = node.type == EntryType::kRegular;
      found[node.ino] = change;
    }
    for (const auto& [name, child] : node.children) {
      if (child->dev == root->dev) visit(*child);
    }
  };
  visit(*root);
  std::vector<InodeChange> out;
  for (auto& [ino, change] : found) out.push_back(change);
  return out;
}

absl::StatusOr<std::string> FakeVolumeFs::InodePath(absl::string_view subvol_path,
                                                   uint64_t ino) {
  std::shared_ptr<Node> root = SubvolumeRootAt(subvol_path);
  if (root == nullptr) {
    return ErrnoToStatus(ENOENT, absl::StrCat("no subvolume at /fake/", subvol_path));
  }
  // Depth first in name order, staying in the subvolume (as INO_LOOKUP does).
  std::function<bool(const Node&, const std::string&, std::string*)> find =
      [&](const Node& dir, const std::string& prefix, std::string* out) {
        for (const auto& [name, child] : dir.children) {
          if (child->dev != root->dev) continue;
          const std::string path = JoinVolumePath(prefix, name);
          if (child->ino == ino) {
            *out = path;
            return true;
          }
          if (child->type == EntryType::kDirectory && find(*child, path, out)) return true;
        }
        return false;
      };
  std::string path;
  if (ino == root->ino) return path;
  if (!find(*root, "", &path)) {
    return ErrnoToStatus(ENOENT, absl::StrCat("inode ", ino, " in /fake/", subvol_path));
  }
  return path;
}

}  // namespace testing
}  // namespace btrdupd
