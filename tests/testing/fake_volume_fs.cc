#include "tests/testing/fake_volume_fs.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ioctl/errno_status.h"

namespace btrdupd {
namespace testing {
namespace {

void Check(bool ok, absl::string_view what) {
  if (!ok) {
    std::fprintf(stderr, "FakeVolumeFs misuse: %.*s\n", static_cast<int>(what.size()),
                 what.data());
    std::abort();
  }
}

std::string ParentPath(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

}  // namespace

struct FakeVolumeFs::Node {
  EntryType type = EntryType::kDirectory;
  uint64_t ino = 0;
  uint64_t dev = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t transid = 0;
  std::map<std::string, std::shared_ptr<Node>> children;
};

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

 private:
  FakeVolumeFs* fs_;
  std::string path_;
  std::shared_ptr<Node> node_;
  VolumeStat self_;
};

FakeVolumeFs::FakeVolumeFs() {
  root_ = std::make_shared<Node>();
  root_->ino = 256;
  root_->dev = next_dev_++;
  root_->transid = transid_;
  Subvolume top;
  top.id = kRootSubvolumeId;
  top.uuid = "uuid-5";
  top.generation = transid_;
  top.root = root_;
  subvol_by_dev_[root_->dev] = top.id;
  subvolumes_[top.id] = std::move(top);
}

FakeVolumeFs::~FakeVolumeFs() = default;

uint64_t FakeVolumeFs::Begin() { return ++transid_; }

void FakeVolumeFs::Stamp(Node* node, uint64_t transid) {
  node->transid = transid;
  auto it = subvol_by_dev_.find(node->dev);
  if (it != subvol_by_dev_.end()) subvolumes_[it->second].generation = transid;
}

std::shared_ptr<FakeVolumeFs::Node> FakeVolumeFs::Lookup(absl::string_view path) const {
  std::shared_ptr<Node> node = root_;
  if (path.empty()) return node;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (node->type != EntryType::kDirectory) return nullptr;
    auto it = node->children.find(std::string(part));
    if (it == node->children.end()) return nullptr;
    node = it->second;
  }
  return node;
}

std::shared_ptr<FakeVolumeFs::Node> FakeVolumeFs::ParentOf(const std::string& path,
                                                           std::string* name) const {
  const size_t slash = path.rfind('/');
  *name = slash == std::string::npos ? path : path.substr(slash + 1);
  std::shared_ptr<Node> parent = Lookup(ParentPath(path));
  Check(parent != nullptr && parent->type == EntryType::kDirectory,
        absl::StrCat("no parent directory for ", path));
  return parent;
}

std::shared_ptr<FakeVolumeFs::Node> FakeVolumeFs::NewNode(const std::shared_ptr<Node>& parent,
                                                          int type) {
  auto node = std::make_shared<Node>();
  node->type = static_cast<EntryType>(type);
  node->dev = parent->dev;
  auto sub = subvol_by_dev_.find(parent->dev);
  node->ino = sub != subvol_by_dev_.end() ? subvolumes_[sub->second].next_ino++ : next_foreign_ino_++;
  node->mtime_ns = (clock_ns_ += 1000);
  return node;
}

VolumeStat FakeVolumeFs::StatOf(const Node& node) const {
  VolumeStat st;
  st.dev = node.dev;
  st.ino = node.ino;
  st.type = node.type;
  st.size = node.size;
  st.mtime_ns = node.mtime_ns;
  return st;
}

void FakeVolumeFs::WriteFile(const std::string& path, uint64_t size) {
  const uint64_t t = Begin();
  std::string name;
  std::shared_ptr<Node> parent = ParentOf(path, &name);
  auto it = parent->children.find(name);
  std::shared_ptr<Node> node;
  if (it == parent->children.end()) {
    node = NewNode(parent, static_cast<int>(EntryType::kRegular));
    parent->children[name] = node;
    Stamp(parent.get(), t);
  } else {
    node = it->second;
    Check(node->type == EntryType::kRegular, absl::StrCat(path, " is not a file"));
    node->mtime_ns = (clock_ns_ += 1000);
  }
  node->size = size;
  Stamp(node.get(), t);
}

void FakeVolumeFs::MakeDir(const std::string& path) {
  const uint64_t t = Begin();
  std::string name;
  std::shared_ptr<Node> parent = ParentOf(path, &name);
  Check(!parent->children.count(name), absl::StrCat(path, " exists"));
  std::shared_ptr<Node> node = NewNode(parent, static_cast<int>(EntryType::kDirectory));
  parent->children[name] = node;
  Stamp(parent.get(), t);
  Stamp(node.get(), t);
}

void FakeVolumeFs::MakeDirs(const std::string& path) {
  std::string prefix;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    prefix = JoinVolumePath(prefix, part);
    if (Lookup(prefix) == nullptr) MakeDir(prefix);
  }
}

void FakeVolumeFs::Symlink(const std::string& path) {
  const uint64_t t = Begin();
  std::string name;
  std::shared_ptr<Node> parent = ParentOf(path, &name);
  std::shared_ptr<Node> node = NewNode(parent, static_cast<int>(EntryType::kSymlink));
  node->size = 20000;  // a long target: size alone must not get it indexed
  parent->children[name] = node;
  Stamp(parent.get(), t);
  Stamp(node.get(), t);
}

void FakeVolumeFs::MakeFifo(const std::string& path) {
  const uint64_t t = Begin();
  std::string name;
  std::shared_ptr<Node> parent = ParentOf(path, &name);
  std::shared_ptr<Node> node = NewNode(parent, static_cast<int>(EntryType::kOther));
  parent->children[name] = node;
  Stamp(parent.get(), t);
  Stamp(node.get(), t);
}

void FakeVolumeFs::HardLink(const std::string& existing, const std::string& path) {
  const uint64_t t = Begin();
  std::shared_ptr<Node> node = Lookup(existing);
  Check(node != nullptr, absl::StrCat("no ", existing));
  std::string name;
  std::shared_ptr<Node> parent = ParentOf(path, &name);
  parent->children[name] = node;
  Stamp(parent.get(), t);
  Stamp(node.get(), t);
}

void FakeVolumeFs::Remove(const std::string& path) {
  const uint64_t t = Begin();
  std::string name;
  std::shared_ptr<Node> parent = ParentOf(path, &name);
  Check(parent->children.erase(name) == 1, absl::StrCat("no ", path));
  Stamp(parent.get(), t);
}

void FakeVolumeFs::Rename(const std::string& from, const std::string& to) {
  const uint64_t t = Begin();
  std::string from_name, to_name;
  std::shared_ptr<Node> from_parent = ParentOf(from, &from_name);
  std::shared_ptr<Node> to_parent = ParentOf(to, &to_name);
  auto it = from_parent->children.find(from_name);
  Check(it != from_parent->children.end(), absl::StrCat("no ", from));
  std::shared_ptr<Node> node = it->second;
  from_parent->children.erase(it);
  to_parent->children[to_name] = node;
  Stamp(from_parent.get(), t);
  Stamp(to_parent.get(), t);
  Stamp(node.get(), t);  // btrfs updates the inode's ctime on rename
}

void FakeVolumeFs::TouchMetadata(const std::string& path) {
  const uint64_t t = Begin();
  std::shared_ptr<Node> node = Lookup(path);
  Check(node != nullptr, absl::StrCat("no ", path));
  Stamp(node.get(), t);
}

uint64_t FakeVolumeFs::CreateSubvolume(const std::string& path) {
  const uint64_t t = Begin();
  std::string name;
  std::shared_ptr<Node> parent = ParentOf(path, &name);
  Check(!parent->children.count(name), absl::StrCat(path, " exists"));
  auto node = std::make_shared<Node>();
  node->ino = 256;
  node->dev = next_dev_++;
  node->mtime_ns = (clock_ns_ += 1000);
  Subvolume sub;
  sub.id = next_subvol_id_++;
  sub.uuid = absl::StrCat("uuid-", sub.id);
  sub.created_generation = t;
  sub.root = node;
  subvol_by_dev_[node->dev] = sub.id;
  const uint64_t id = sub.id;
  subvolumes_[id] = std::move(sub);
  parent->children[name] = node;
  Stamp(parent.get(), t);
  Stamp(node.get(), t);
  return id;
}

uint64_t FakeVolumeFs::Snapshot(const std::string& source, const std::string& path,
                                bool read_only) {
  std::shared_ptr<Node> src_root = Lookup(source);
  Check(src_root != nullptr && subvol_by_dev_.count(src_root->dev) && src_root->ino == 256,
        absl::StrCat(source, " is not a subvolume"));
  const Subvolume& src = subvolumes_[subvol_by_dev_[src_root->dev]];
  const uint64_t id = CreateSubvolume(path);
  Subvolume& snap = subvolumes_[id];
  snap.parent_uuid = src.uuid;
  snap.read_only = read_only;
  snap.next_ino = src.next_ino;
  const uint64_t dev = snap.root->dev;
  absl::flat_hash_map<const Node*, std::shared_ptr<Node>> copies;
  // Copies the tree of `from` into `to`, keeping inode numbers and transids; nested
  // subvolumes are left out (btrfs leaves an empty placeholder there).
  std::function<void(const Node&, Node*)> copy = [&](const Node& from, Node* to) {
    for (const auto& [name, child] : from.children) {
      if (child->dev != from.dev) continue;
      auto done = copies.find(child.get());
      if (done != copies.end()) {
        to->children[name] = done->second;
        continue;
      }
      auto clone = std::make_shared<Node>(*child);
      clone->dev = dev;
      clone->children.clear();
      copies[child.get()] = clone;
      to->children[name] = clone;
      if (child->type == EntryType::kDirectory) copy(*child, clone.get());
    }
  };
  copy(*src_root, snap.root.get());
  return id;
}

void FakeVolumeFs::DeleteSubvolume(const std::string& path) {
  std::shared_ptr<Node> node = Lookup(path);
  Check(node != nullptr && subvol_by_dev_.count(node->dev) && node->ino == 256,
        absl::StrCat(path, " is not a subvolume"));
  subvolumes_.erase(subvol_by_dev_[node->dev]);
  subvol_by_dev_.erase(node->dev);
  Remove(path);
}

void FakeVolumeFs::MountForeign(const std::string& path) {
  std::string name;
  std::shared_ptr<Node> parent = ParentOf(path, &name);
  auto it = parent->children.find(name);
  Check(it != parent->children.end() && it->second->type == EntryType::kDirectory,
        absl::StrCat(path, " is not a directory"));
  hidden_by_mounts_[path] = it->second;
  auto mount = std::make_shared<Node>();
  mount->ino = 1;
  mount->dev = 900 + next_dev_++;
  it->second = mount;
}

void FakeVolumeFs::AdvanceGeneration(const std::string& subvol_path, uint64_t n) {
  std::shared_ptr<Node> node = Lookup(subvol_path);
  Check(node != nullptr && subvol_by_dev_.count(node->dev),
        absl::StrCat(subvol_path, " is not in a subvolume"));
  transid_ += n;
  subvolumes_[subvol_by_dev_[node->dev]].generation = transid_;
}

void FakeVolumeFs::FailStat(const std::string& path, absl::Status status) {
  stat_failures_[path] = std::move(status);
}

void FakeVolumeFs::FailOpen(const std::string& path, absl::Status status) {
  open_failures_[path] = std::move(status);
}

void FakeVolumeFs::ClearFailures() {
  stat_failures_.clear();
  open_failures_.clear();
}

uint64_t FakeVolumeFs::InodeOf(const std::string& path) {
  std::shared_ptr<Node> node = Lookup(path);
  Check(node != nullptr, absl::StrCat("no ", path));
  return node->ino;
}

uint64_t FakeVolumeFs::GenerationOf(const std::string& subvol_path) {
  std::shared_ptr<Node> node = Lookup(subvol_path);
  Check(node != nullptr && subvol_by_dev_.count(node->dev), "not a subvolume");
  return subvolumes_[subvol_by_dev_[node->dev]].generation;
}

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
