#include "tests/testing/fake_volume_fs.h"

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/testing/fake_volume_fs_node.h"

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
  node->mtime_ns = node->ctime_ns = (clock_ns_ += 1000);
  return node;
}

VolumeStat FakeVolumeFs::StatOf(const Node& node) const {
  VolumeStat st;
  st.dev = node.dev;
  st.ino = node.ino;
  st.type = node.type;
  st.size = node.size;
  st.mtime_ns = node.mtime_ns;
  st.ctime_ns = node.ctime_ns;
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
    node->mtime_ns = node->ctime_ns = (clock_ns_ += 1000);
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
  node->ctime_ns = (clock_ns_ += 1000);  // link() updates the inode's ctime
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
  node->ctime_ns = (clock_ns_ += 1000);  // btrfs updates the inode's ctime on rename
  Stamp(node.get(), t);
}

void FakeVolumeFs::TouchMetadata(const std::string& path) {
  const uint64_t t = Begin();
  std::shared_ptr<Node> node = Lookup(path);
  Check(node != nullptr, absl::StrCat("no ", path));
  node->ctime_ns = (clock_ns_ += 1000);
  Stamp(node.get(), t);
}

void FakeVolumeFs::RewriteExtents(const std::string& path) {
  const uint64_t t = Begin();
  std::shared_ptr<Node> node = Lookup(path);
  Check(node != nullptr, absl::StrCat("no ", path));
  Stamp(node.get(), t);
}

void FakeVolumeFs::SetMtime(const std::string& path, int64_t mtime_ns) {
  const uint64_t t = Begin();
  std::shared_ptr<Node> node = Lookup(path);
  Check(node != nullptr, absl::StrCat("no ", path));
  node->mtime_ns = mtime_ns;
  node->ctime_ns = (clock_ns_ += 1000);
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
  node->mtime_ns = node->ctime_ns = (clock_ns_ += 1000);
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

}  // namespace testing
}  // namespace btrdupd
