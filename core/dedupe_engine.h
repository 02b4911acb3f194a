// DedupeEngine: hashes, groups, dedupes and verifies the duplicate files of one volume.
//
// The engine works from the volume's index (core/index.h), which the scanner fills. It
// reaches files only through FileAccess (core/file_access.h) and the kernel's dedupe only
// through a DedupeBackend (core/dedupe_backend.h), so it runs on fakes in tests.
//
// Work is cut into small steps so the one-shot CLI and the daemon's round-robin can both
// drive it: Step() does one unit (hash one file - or up to 64 small files of one size
// group, 8 MiB at most - or dedupe one batch of one group) and says what it did. A *pass* walks the sizes the index reports with work
// (VolumeIndex::SizesWithWork), one size group at a time (only that group is in memory:
// read once per pass and kept up to date from the rows the index reports changed, so a
// group of n files costs O(n) row reads and each per-file decision a map lookup, see
// core/size_group_view.h; a settled full-hash group is not looked at again in the pass;
// a full-hash group is planned once per pass and its batches handed out from a cursor,
// core/group_cursor.h, so one batch of a group of n files costs O(batch) lookups plus
// O(batch log n) index updates, and the whole group O(n), not n * n / batch; the facts
// its plan needs are read at most EngineOptions::max_fact_reads_per_step per step);
// when the pass is over Step() returns kIdle with the time the next waiting file becomes
// eligible. The next Step() after kIdle starts a new pass: callers should sleep until
// `next_eligible` or until the scanner changed the index before calling again. A pass
// starts by bringing back stability waits that a wall clock stepped back would stretch
// (VolumeIndex::ClampStabilityWaits), so a step back of a day delays no file by a day.
//
// Pipeline per size group (sizes >= min_file_size shared by >= 2 tracked files):
//  1. Hash the eligible members (next_eligible <= now). Members of the same inode (hard
//     links) are hashed once. A member that FIEMAP shows shares all extents with an
//     already hashed member of the group (snapshots, reflink copies) gets its hash copied
//     without reading it. Files larger than 2 * prefix_bytes are first hashed over their
//     first prefix_bytes (HashState::kPrefix); only those whose prefix matches another
//     member's prefix, or the prefix of a group that already has full hashes, are read
//     in full (continuing the same read), so same-size decoys that differ early cost
//     little I/O. Exception: the first file of a pair (a size group of two inodes) is
//     read whole at once and the other is prefix-checked against it, so identical pairs
//     cost no extra read. Measured on fakes (bytes read / bytes of the size groups):
//     identical pairs 100%; pair + 1 decoy 70%; pair + 3 decoys 45% (1 MiB files), 57%
//     (200 KiB files); without the filter every case is 100%. A file that changed while
//     read (fstat before/after) is invalidated and waits again; a vanished file is
//     removed from the index; an unreadable file or an active swap file is kSkipped with
//     a reason. Hashed members that match nothing become kUnique (the size leaves the
//     work queue until a new file of that size appears). Before hashing, the files about
//     to be read (the rest of the group, then the groups of the next sizes, up to
//     EngineOptions::prefetch_bytes) are hinted to FileAccess::Prefetch, so the disk
//     reads ahead while the CPU hashes (one thread, no extra I/O beyond the hints).
//  2. Group by (size, full hash) and NOCOW flag (NOCOW files cannot share extents with
//     checksummed ones), and by owner (st_uid) when the volume's dedupe_across_owners is
//     off (each owner's copies then have their own reference; a file whose copies all
//     belong to others becomes kUnique until a copy of its owner appears), counting
//     distinct inodes; groups of >= 2 inodes go on.
//  3. Reference: the remembered one (DedupeState::kReference) while it is unchanged -
//     unless it could be a destination and a copy needing work cannot (e.g. one in a
//     received snapshot that arrived later), which then takes over so it is shared too;
//     otherwise the best member by, in order: can be a source (not a swapfile); cannot
//     be a destination (immutable, append-only, on a received read-only snapshot), so
//     its copies can still share with it; already shares extents (keeps existing
//     sharing); oldest first_seen; lowest id. It is recorded as kReference (not in dry
//     run).
//  4. Members that already share all extents with the reference are marked
//     kAlreadyShared with no dedupe call (kDeduped, keeping its date, if btrdupd deduped
//     it before: VolumeIndex::RecordSharing). Other hard links of a member's inode are marked kSkipped
//     ("hard link ...": one inode, nothing to share).
//  5. The rest are deduped through the backend in batches (one per Step(), taken in
//     order from the group's plan, each destination checked against its current row;
//     a step also looks at no more than max(4 * batch, 256) inodes, so already shared
//     copies and refusals are gone through in bounded steps too): a group of
//     >= large_group_threshold members sends up to dedup_batch_size destinations per
//     backend call, a smaller group up to max_dedup_batch (and at most max_batch_bytes
//     of destinations). "Differs" => InvalidateFile (it changed after hashing; it waits
//     again). Failure => kSkipped with the reason, except Unavailable (EAGAIN while a
//     send runs, EBUSY): left pending and tried again in the next pass; and EROFS on a
//     read-only snapshot (7).
//  6. Verify: a destination is kDeduped (and its bytes counted) only if FIEMAP shows it
//     now shares all extents with the reference. Two figures: bytes_deduped ("shared":
//     size * files) and bytes_freed ("freed": the destinations' old extents nothing else
//     still holds, taken with FileAccess::HeldExtents before the call; see
//     core/freed_space.h), which is also added to the index (kBytesFreedMetaKey).
//  7. Read-only snapshots are deduped as they are, flag untouched: btrfs allows
//     FIDEDUPERANGE into a read-only subvolume (only clone is refused; the bytes are
//     compared first, so the snapshot's contents cannot change), and clearing the flag
//     would let any process write into the snapshot meanwhile. Only if the kernel
//     refuses a destination with EROFS (older kernels) while its subvolume is read-only,
//     not received, and on a writable mount, is it retried once, in one batch per
//     subvolume, with the flag cleared for that batch: the flip is recorded (and
//     committed) in the index first, the flag cleared, the batch deduped, the flag
//     restored and the record cleared; restored on every path. After a crash,
//     RestorePendingReadOnlyFlips() restores what a killed run left writable. A
//     destination on a received snapshot (received_uuid set) is never flipped and never
//     deduped (kSkipped "read-only received snapshot: ..."), as bees'
//     --workaround-btrfs-send does, so its extents stay as received; it can still be the
//     reference.
//
// Dry run: the engine hashes (hashes are not dedupe state) and reports each group it
// would dedupe with the bytes it would save (StepResult::planned), but never calls the
// backend, never flips a flag and never changes a dedupe state.
//
// Step() returns a non-OK status only when the index fails (the database is the
// engine's memory; going on without it is unsafe) or the backend does not work at all
// (core/dedupe_backend.h, BackendFailure: nothing is recorded against any file; the
// step's index changes are rolled back and the same group is tried again next time). Trouble with one file is recorded in
// the index and the pass goes on.
//
// Thread-safety: not thread-safe; one engine per volume, driven from one thread.

#ifndef BTRDUPD_CORE_DEDUPE_ENGINE_H_
#define BTRDUPD_CORE_DEDUPE_ENGINE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/dedupe_backend.h"
#include "core/file_access.h"
#include "core/file_hasher.h"
#include "core/freed_space.h"
#include "core/group_cursor.h"
#include "core/hash_copy.h"
#include "core/index.h"
#include "core/planner.h"
#include "core/read_ahead.h"
#include "core/size_group_view.h"
#include "core/skip_kind.h"
#include "core/step_result.h"

namespace btrdupd {

struct EngineOptions {
  // Plan only: see "Dry run" above.
  bool dry_run = false;
  // Bytes hashed first to rule out same-size decoys. Files up to 2 * prefix_bytes are
  // hashed in full directly.
  uint64_t prefix_bytes = 64 * 1024;
  // Size of each read() while hashing.
  size_t read_buffer_bytes = 1 << 20;
  // At most this many size groups without work are looked at in one Step().
  int max_sizes_per_step = 256;
  // A backend call carries at most this many bytes of destinations (at least one file),
  // on top of the batch limits of the configuration, so one Step() stays short: the
  // kernel reads both copies of every byte it compares.
  uint64_t max_batch_bytes = uint64_t{256} << 20;
  // Reading ahead: before a file is hashed, the engine hints (FileAccess::Prefetch) the
  // next files it expects to read - the rest of the size group, then the groups of the
  // next sizes - until this many hinted bytes are not read yet, so the disk reads them
  // while the CPU hashes. A file is hinted for at most prefetch_file_bytes (or its
  // prefix, where the prefix stage comes first). 0 turns reading ahead off. Measured on
  // bench/dedupe_bench's data: 1-2 MiB ahead hashes fastest; 4 MiB and more is slower
  // (each hint waits for its extent lookup and request slots while the CPU could hash).
  uint64_t prefetch_bytes = uint64_t{2} << 20;
  uint64_t prefetch_file_bytes = uint64_t{256} << 10;
  // How long the index writes of consecutive steps may share one transaction (measured
  // on the machine's clock, not the engine's Clock). Zero: every Step() commits its own
  // writes before it returns. Above zero (one-shot runs), a Step() leaves its
  // transaction open for the next one until this much time has passed since it began;
  // the pass's last step (kIdle) and CommitPending() commit it. Each commit of the index
  // costs a journal write of every page it touched: on 300 000 small files, a commit per
  // step was a third of the run's CPU time. The caller must call CommitPending() before
  // it uses the index in any other way than reading it or writing single statements.
  absl::Duration commit_interval = absl::ZeroDuration();
  // Checked between reads while hashing (every read_buffer_bytes). When it returns true
  // the file being hashed is abandoned with nothing recorded and Step() returns
  // kInterrupted, so SIGTERM need not wait for a huge file.
  std::function<bool()> should_stop;
  // Daemon: one Step() reads at most this many bytes of one file to hash it (0: a file
  // is read to its end in one step), or for at most hash_slice_time (0: no limit). A
  // larger file is hashed over several steps (kHashSlice): the open file and the digest
  // states are kept between them (hash_progress() shows where it is), and each next
  // slice first checks that the file and its record are unchanged, else the partial
  // hash is dropped and the file waits again. Other work of the volume waits for the
  // hash to end; the caller serves sockets and other volumes between steps.
  uint64_t hash_slice_bytes = 0;
  absl::Duration hash_slice_time = absl::ZeroDuration();
  // Called (not in dry run) when a step deduped files, with the step's result, before
  // the step's index transaction ends: what it writes to the index (running totals)
  // commits with the step's own writes, not in transactions of its own. An error fails
  // the step like an index error (rolled back).
  std::function<absl::Status(const StepResult&)> on_deduped;
  // Before a full-hash group is planned, the attributes of its members are read and,
  // when it has no reference yet, FIEMAP is asked whether each already shares extents
  // (the reference's choice). One Step() makes at most this many of these calls (at
  // least 1); a larger group is prepared over several steps (kDedupeBatch results with
  // nothing deduped), so a step stays short however large the group.
  int max_fact_reads_per_step = 1024;
};

// A file hashed over several steps, as far as it got.
struct HashProgress {
  std::string path;     // absolute
  uint64_t offset = 0;  // bytes behind (holes included)
  uint64_t size = 0;
};

class DedupeEngine {
 public:
  // All pointers are borrowed and must outlive the engine. `volume_root` is the absolute
  // path the index's relative paths are joined to.
  DedupeEngine(VolumeIndex* index, FileAccess* files, DedupeBackend* backend,
               const VolumeConfig& config, Clock* clock, std::string volume_root,
               EngineOptions options = EngineOptions());

  DedupeEngine(const DedupeEngine&) = delete;
  DedupeEngine& operator=(const DedupeEngine&) = delete;

  // Restores every read-only flag a previous (killed) run left cleared, and forgets the
  // records. Call once when the volume is opened, before the first Step(). A flag that
  // cannot be restored keeps its record (so a later call retries) and is reported.
  absl::Status RestorePendingReadOnlyFlips();

  // Does one unit of work. See the file comment.
  absl::StatusOr<StepResult> Step();

  // Commits the transaction steps left open (EngineOptions::commit_interval); nothing
  // when none is open.
  absl::Status CommitPending();

  // Steps until the pass ends (kIdle, returned last) or `should_stop` returns true
  // (checked between steps). `progress` (may be null) sees every step's result.
  absl::StatusOr<StepResult> RunUntilIdle(
      const std::function<void(const StepResult&)>& progress = nullptr,
      const std::function<bool()>& should_stop = nullptr);

  // Takes new settings (e.g. after SIGHUP); the current pass goes on with them.
  void SetConfig(const VolumeConfig& config) { config_ = config; }

  // Sets EngineOptions::commit_interval (takes effect at the next Step()).
  void SetCommitInterval(absl::Duration interval) { options_.commit_interval = interval; }

  const EngineStats& stats() const { return stats_; }

  // The file being hashed in slices, if a hash is part-way (see hash_slice_bytes).
  std::optional<HashProgress> hash_progress() const;

 private:
  struct SubvolInfo {
    uint64_t id = 0;
    std::string relative_path;
    SubvolumeFlags flags;
  };
  // Whether a file whose prefix was just hashed is read on to its end, and the bytes
  // read from other members to decide it.
  struct ReadOn {
    bool whole = false;
    uint64_t side_bytes = 0;
  };

  std::string AbsPath(const std::string& relative) const;
  // The identity FileAccess and the backend open `file` by (core/file_access.h).
  FileRef RefOf(const FileRecord& file) const;
  SubvolumeRef SubvolRefOf(uint64_t subvol_id, const std::string& relative_path) const;
  absl::StatusOr<StepResult> StepSize(uint64_t size, absl::Time now, bool* size_done);
  // Brings group_ to the index's current rows of `size`: the rows changed since the last
  // step are read one by one; the whole group only when it is not loaded yet, when a
  // file joined or left it, or when too many rows changed (core/size_group_view.h).
  absl::Status RefreshGroup(uint64_t size);
  absl::Status ReloadGroup(uint64_t size);

  // Hashing (dedupe_engine_hash.cc).
  absl::StatusOr<StepResult> HashSome(std::vector<FileRecord>& members, HashTask task,
                                      absl::Time now);
  absl::StatusOr<StepResult> HashMember(std::vector<FileRecord>& members, const HashTask& task,
                                        absl::Time now);
  // Records what hashing `file` (a member of `members`) came to in `result`; a partial
  // hash is kept in hashing_.
  absl::Status RecordReading(std::vector<FileRecord>& members, const FileRecord& file,
                             HashReading reading, StepResult& result);
  // The next slice of the hash in hashing_.
  absl::StatusOr<StepResult> ResumeHash(absl::Time now);
  // Reading ahead (see EngineOptions::prefetch_bytes, core/read_ahead.h).
  absl::Status PrefetchAhead(const std::vector<FileRecord>& members, absl::Time now);
  // Learns the prefixes of the group's full hashes that appeared since the last call
  // (into full_prefixes_ / unknown_full_prefix_). Returns the bytes read for them.
  absl::StatusOr<uint64_t> LearnFullGroupPrefixes();
  // See FileHasher::ReadOnDecision.
  absl::StatusOr<ReadOn> ReadsOn(const std::vector<FileRecord>& members,
                                 const FileRecord& file, const std::string& prefix_digest);
  // The prefix digest of the group of members whose full hash is `full_hash` (cached in
  // prefix_of_full_, else read from one of them); no digest when none can be read.
  absl::StatusOr<PrefixReading> PrefixOfFullGroup(const std::string& full_hash);
  // `file`'s path relative to its subvolume's root (snapshots keep it).
  std::string PathInSubvolume(const FileRecord& file) const;
  void SetSubvolumes(std::vector<SubvolumeRecord> subvolumes);
  // The MemberIndex of `members` (group_'s: built again only when group_ is reloaded).
  MemberIndex& IndexMembers(const std::vector<FileRecord>& members);
  // Dedupes the snapshot copies of `dest` that have no rows (VolumeIndex::ImpliedCopies)
  // against `reference` after `dest` itself was: they held dest's old extents.
  // Returns the copies now verified sharing the reference (for the freed count: they
  // held the destination's extents).
  absl::StatusOr<std::vector<InodeKey>> DedupeImpliedCopies(const FileRecord& reference,
                                                            const FileRef& reference_ref,
                                                            const FileRecord& dest,
                                                            StepResult& result);
  // Copies the hash of a member `file` shares all extents with (core/hash_copy.h);
  // false if there is none.
  absl::StatusOr<bool> TryCopyHash(std::vector<FileRecord>& members,
                                   const FileRecord& file, bool prefix_task,
                                   StepResult& result);
  absl::Status SetHashForInode(std::vector<FileRecord>& members,
                               const FileRecord& file, HashState state,
                               const std::string& hash);

  // Groups (dedupe_engine_group.cc). The next unit of work of the full-hash group
  // group_.groups()[g], through cursor_ (built first when it is not for this group);
  // nullopt when the group needs nothing more in this pass.
  absl::StatusOr<std::optional<StepResult>> ProcessGroup(size_t g, absl::Time now);
  // Reads the facts the plan of the group `indices` needs (attributes; extent sharing
  // when it has no reference yet) into attrs_cache_ / shared_cache_, at most
  // max_fact_reads_per_step per step: returns the step when that limit stopped it.
  absl::StatusOr<std::optional<StepResult>> PrepareGroup(const std::vector<size_t>& indices);
  // Builds cursor_ for the group of view indices `indices` (attributes, partitions) right
  // after PrepareGroup finished it (preparing_ holds whether it has work), or
  // returns the step that recorded what stood in the way (unreadable attributes, a lone
  // NOCOW copy); no cursor then, the next step builds again.
  absl::StatusOr<std::optional<StepResult>> BuildCursor(const std::vector<size_t>& indices,
                                                        absl::Time now);
  // What the planner needs to know of a member (core/planner.h).
  absl::StatusOr<MemberFacts> FactsOf(const FileRecord& member, const FileAttributes& attrs);
  // The next batch of the cursor's current partition; nullopt when it is done.
  absl::StatusOr<std::optional<StepResult>> ProcessPartition(GroupPartition& part,
                                                             absl::Time now);
  // One backend call for `batch`, outcomes verified and recorded. With `flip_subvol`
  // (!= 0) the batch is an EROFS retry and that subvolume is writable for the call only.
  absl::Status DedupeBatch(const FileRecord& reference,
                           const std::vector<const FileRecord*>& batch, uint64_t flip_subvol,
                           StepResult& result);
  absl::StatusOr<SubvolInfo> SubvolumeOf(uint64_t subvol_id);
  // A backend error that is the volume's condition, not the file's: no space
  // (ENOSPC/EDQUOT: a dedupe needs metadata space) or the filesystem gone read-only.
  // Returned as the step's error (ResourceExhausted / Unavailable) so that nothing is
  // recorded against the files and the caller pauses the volume; OK for anything else.
  absl::Status VolumeCondition(const absl::Status& error);
  // Adds `bytes` to the volume's total freed (index meta kBytesFreedMetaKey).
  absl::Status AddFreedToIndex(uint64_t bytes);

  // Outcomes for one file (dedupe_engine.cc / _hash.cc).
  absl::Status Skip(const FileRecord& file, SkipKind kind, absl::string_view detail,
                    StepResult& result);
  absl::Status Changed(const FileRecord& file, StepResult& result);
  // `file` is not where (or what) the index says (FileAccess answered Aborted): the tree
  // changed since the scan. Like Changed(): it waits again, and the scanner's next pass
  // records what is there now. Not an error, not a skip.
  absl::Status BackToScanner(const FileRecord& file, const absl::Status& why,
                             StepResult& result);
  absl::Status RemoveVanished(const FileRecord& file, StepResult& result);
  // FileAccess could not reach `file` while `doing` something: back to the scanner (the
  // tree changed), removed (vanished) or skipped (unreadable), by the error.
  absl::Status FileTrouble(const FileRecord& file, const absl::Status& error,
                           absl::string_view doing, StepResult& result);
  void Account(const StepResult& result);

  VolumeIndex* const index_;
  FileAccess* const files_;
  DedupeBackend* const backend_;
  VolumeConfig config_;
  Clock* const clock_;
  const std::string volume_root_;
  EngineOptions options_;  // only commit_interval changes (SetCommitInterval)

  // The current pass.
  bool in_pass_ = false;
  bool batch_open_ = false;         // a transaction left open by a Step()
  absl::Time batch_began_;          // when (machine clock), for commit_interval
  std::deque<uint64_t> sizes_;
  absl::flat_hash_set<int64_t> attempted_;  // members of the current size handled this pass
  std::vector<SubvolumeRecord> subvolumes_;  // read at the start of the pass
  absl::flat_hash_map<uint64_t, std::string> subvol_paths_;  // id -> path, of subvolumes_
  // The size group being worked on, kept across steps (core/size_group_view.h), the
  // prefixes of its full-hash groups learnt so far, and its hash-copy lookups.
  SizeGroupView group_;
  absl::flat_hash_set<std::string> full_prefixes_;
  bool unknown_full_prefix_ = false;  // a full group whose prefix could not be read
  std::optional<GroupCursor> cursor_;  // the full-hash group being deduped (this pass)
  MemberIndex member_index_;
  uint64_t member_index_generation_ = 0;  // group_.generation() it was built for
  absl::flat_hash_map<std::string, std::string> prefix_of_full_;  // full hash -> prefix
  absl::flat_hash_map<uint64_t, SubvolInfo> subvol_cache_;        // one group's lookups
  absl::flat_hash_map<int64_t, FileAttributes> attrs_cache_;      // current size group
  absl::flat_hash_map<int64_t, bool> shared_cache_;  // HasSharedExtents, current size group
  // The group PrepareGroup() is reading facts for, and how far it got.
  struct Preparing {
    uint64_t generation = 0;
    uint64_t groups_version = 0;
    std::string hash;
    bool has_work = false;
    bool needs_shared = false;  // no usable kReference: the choice asks FIEMAP
    size_t attrs_pos = 0;
    size_t shared_pos = 0;
  };
  std::optional<Preparing> preparing_;
  FileHasher hasher_;
  std::unique_ptr<HashInProgress> hashing_;  // a hash part-way, between steps
  absl::Time slice_deadline_ = absl::InfiniteFuture();  // of the current hash slice
  ReadAheadWindow read_ahead_;
  EngineStats stats_;
};

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_DEDUPE_ENGINE_H_
