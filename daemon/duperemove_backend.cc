#include "daemon/duperemove_backend.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "daemon/file_opener.h"
#include "daemon/subprocess.h"
#include "ioctl/errno_status.h"
#include "ioctl/fiemap.h"

namespace btrdupd {
namespace {

std::string FdName(int fd) { return absl::StrCat("/proc/self/fd/", fd); }

// The names duperemove may print for the open file `fd`: the one it is given, and the
// path realpath(3) turns it into (older releases print that).
FileNames NamesOf(int fd) {
  FileNames names = {FdName(fd)};
  char buf[4096];
  const ssize_t n = readlink(FdName(fd).c_str(), buf, sizeof(buf));
  if (n > 0 && static_cast<size_t>(n) < sizeof(buf)) names.emplace_back(buf, n);
  return names;
}

// Signals that mean "stopped from outside", not "crashed".
bool IsStopSignal(int sig) {
  return sig == SIGTERM || sig == SIGINT || sig == SIGKILL || sig == SIGHUP || sig == SIGQUIT;
}

bool SharesAllExtents(const std::vector<Extent>& a, const std::vector<Extent>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].logical != b[i].logical || a[i].physical != b[i].physical ||
        a[i].length != b[i].length) {
      return false;
    }
  }
  return true;
}

std::vector<DedupeOutcome> AllFailed(size_t n, const absl::Status& error) {
  std::vector<DedupeOutcome> outcomes(n);
  for (DedupeOutcome& o : outcomes) {
    o.kind = DedupeOutcome::Kind::kFailed;
    o.error = error;
  }
  return outcomes;
}

}  // namespace

absl::StatusOr<OpenedFile> DuperemoveBackend::Open(const FileRef& ref) {
  absl::StatusOr<UniqueFd> fd = opener_->OpenForRead(ref);
  if (!fd.ok()) return fd.status();
  // Keep the standard descriptors free: a child gets its input and output there.
  if (fd->get() < 3) {
    const int moved = fcntl(fd->get(), F_DUPFD_CLOEXEC, 3);
    if (moved < 0) return btrdupd::ErrnoToStatus(errno, absl::StrCat("dup ", ref.display));
    fd->reset(moved);
  }
  struct stat st;
  if (fstat(fd->get(), &st) != 0) {
    return btrdupd::ErrnoToStatus(errno, absl::StrCat("fstat ", ref.display));
  }
  OpenedFile file;
  file.fd = *std::move(fd);
  file.dev = st.st_dev;
  file.ino = st.st_ino;
  file.size = static_cast<uint64_t>(st.st_size);
  return file;
}

DuperemoveBackend::DuperemoveBackend(FileOpener* opener, Options options)
    : opener_(opener), options_(std::move(options)) {}

absl::StatusOr<DuperemoveDialect> DuperemoveBackend::Detect() const {
  absl::StatusOr<std::string> program = FindExecutable(options_.binary);
  if (!program.ok()) {
    return BackendFailure(
        absl::StatusCode::kFailedPrecondition,
        absl::StrCat("--backend=duperemove needs the duperemove program: ",
                     program.status().message(),
                     ". Install it (Debian/Ubuntu: apt-get install duperemove) or use "
                     "--backend=native"));
  }
  struct stat st;
  Binary binary;
  binary.path = *program;
  if (stat(program->c_str(), &st) == 0) {
    binary.dev = st.st_dev;
    binary.ino = st.st_ino;
    binary.size = st.st_size;
    binary.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  }
  if (binary_.has_value() && dialect_.has_value() && binary_->path == binary.path &&
      binary_->dev == binary.dev && binary_->ino == binary.ino &&
      binary_->size == binary.size && binary_->mtime_ns == binary.mtime_ns) {
    return *dialect_;
  }
  ProcessOptions run_options;
  run_options.new_session = true;
  run_options.deadline = absl::Seconds(30);
  absl::StatusOr<ProcessResult> run = RunProcess({*program, "--version"}, run_options);
  if (!run.ok() || run->exit_code != 0) {
    return BackendFailure(
        absl::StatusCode::kFailedPrecondition,
        absl::StrCat("--backend=duperemove: '", *program, " --version' failed: ",
                     run.ok() ? OutputTail(run->output) : std::string(run.status().message()),
                     ". Fix the duperemove installation or use --backend=native"));
  }
  absl::StatusOr<DuperemoveVersion> version = ParseDuperemoveVersion(run->output);
  if (!version.ok()) {
    return BackendFailure(absl::StatusCode::kFailedPrecondition,
                          absl::StrCat("--backend=duperemove: ", *program, ": ",
                                       version.status().message()));
  }
  absl::StatusOr<DuperemoveDialect> dialect = DialectFor(*version);
  if (!dialect.ok()) {
    return BackendFailure(dialect.status().code(), absl::StrCat("--backend=duperemove: ",
                                                                *program, ": ",
                                                                dialect.status().message()));
  }
  binary_ = binary;
  dialect_ = *dialect;
  return *dialect;
}

absl::Status DuperemoveBackend::CheckAvailable() const { return Detect().status(); }

DuperemoveBackend::Split DuperemoveBackend::SplitInvocations(
    uint64_t source_ino, uint64_t source_name_bytes, const std::vector<uint64_t>& inos,
    const std::vector<uint64_t>& name_bytes, int max_files, uint64_t max_bytes) {
  struct Run {
    std::vector<size_t> dests;
    absl::flat_hash_set<uint64_t> inos;
    uint64_t bytes = 0;
  };
  const size_t max_dests = static_cast<size_t>(std::max(max_files - 1, 1));
  std::vector<Run> runs;
  Split split;
  for (size_t i = 0; i < inos.size(); ++i) {
    if (inos[i] == source_ino) {
      split.same_as_source.push_back(i);
      continue;
    }
    Run* fit = nullptr;
    for (Run& run : runs) {
      if (run.dests.size() < max_dests && !run.inos.contains(inos[i]) &&
          run.bytes + name_bytes[i] <= max_bytes) {
        fit = &run;
        break;
      }
    }
    if (fit == nullptr) {
      runs.emplace_back();
      fit = &runs.back();
      fit->bytes = source_name_bytes;
    }
    fit->dests.push_back(i);
    fit->inos.insert(inos[i]);
    fit->bytes += name_bytes[i];
  }
  for (Run& run : runs) split.runs.push_back(std::move(run.dests));
  return split;
}

absl::StatusOr<std::vector<DedupeOutcome>> DuperemoveBackend::RunOnce(
    const DuperemoveDialect& dialect, const std::vector<OpenedFile>& files,
    const std::vector<FileNames>& names, size_t source, const std::vector<size_t>& dests,
    uint64_t size) {
  // -b 4096: releases that resolve names (0.11-0.13) ignore files smaller than the
  // block size (128 KiB by default), even in --fdupes mode.
  std::vector<std::string> argv = {binary_->path, "--fdupes", "-d", "-b", "4096",
                                   "--io-threads=1"};
  if (dialect.read_only_flag) argv.push_back("-A");
  std::string input;
  ProcessOptions run_options;
  run_options.new_session = true;
  if (dialect.reference_first) absl::StrAppend(&input, names[source][0], "\n");
  run_options.inherit_fds.push_back(files[source].fd.get());
  std::vector<FileNames> dest_names;
  for (size_t d : dests) {
    absl::StrAppend(&input, names[d][0], "\n");
    run_options.inherit_fds.push_back(files[d].fd.get());
    dest_names.push_back(names[d]);
  }
  if (!dialect.reference_first) absl::StrAppend(&input, names[source][0], "\n");
  input.push_back('\n');  // ends the group
  run_options.stdin_data = input;
  const double bytes = 2.0 * static_cast<double>(size) * static_cast<double>(dests.size() + 1);
  run_options.deadline =
      options_.min_deadline +
      absl::Seconds(bytes / static_cast<double>(std::max<uint64_t>(options_.min_bytes_per_second, 1)));

  run_options.cancel = options_.should_stop;
  absl::StatusOr<ProcessResult> run = RunProcess(argv, run_options);
  if (!run.ok()) return run.status();
  const std::string who = absl::StrCat("duperemove ", dialect.version.text);
  if (run->cancelled) {
    return AllFailed(dests.size(),
                     absl::UnavailableError(absl::StrCat(
                         who, " was stopped because btrdupd is stopping; tried again later")));
  }
  if (run->timed_out) {
    return AllFailed(dests.size(),
                     absl::UnavailableError(absl::StrCat(
                         who, " did not finish within ",
                         absl::FormatDuration(run_options.deadline),
                         " and was killed; tried again later")));
  }
  if (run->term_signal != 0) {
    if (IsStopSignal(run->term_signal)) {
      return AllFailed(dests.size(),
                       absl::UnavailableError(absl::StrCat(
                           who, " was stopped by signal ", run->term_signal,
                           "; tried again later")));
    }
    return BackendFailure(absl::StatusCode::kInternal,
                          absl::StrCat(who, " crashed (signal ", run->term_signal, "): ",
                                       OutputTail(run->output)));
  }
  if (run->exit_code != 0) {
    if (std::optional<int> err = DuperemoveIoctlFailure(run->output); err.has_value()) {
      return btrdupd::ErrnoToStatus(
          *err, absl::StrCat(who, ": the kernel refused the whole dedupe from ",
                             names[source].back()));
    }
    return BackendFailure(
        absl::StatusCode::kFailedPrecondition,
        absl::StrCat(who, " failed (exit status ", run->exit_code, "): ",
                     OutputTail(run->output),
                     ". Fix the duperemove installation or use --backend=native"));
  }
  if (!DuperemoveQueued(run->output, names[source])) {
    return absl::FailedPreconditionError(absl::StrCat(
        who, " did not take ", names[source].back(), " as the source: ",
        OutputTail(run->output)));
  }
  return ParseDuperemoveOutcomes(dest_names, size, run->output);
}

absl::StatusOr<std::vector<DedupeOutcome>> DuperemoveBackend::Dedupe(
    const DedupeRequest& request) {
  absl::StatusOr<DuperemoveDialect> dialect = Detect();
  if (!dialect.ok()) return dialect.status();

  // files[0] is the reference, files[1 + i] destination i.
  std::vector<OpenedFile> files;
  absl::StatusOr<OpenedFile> reference = Open(request.reference);
  if (!reference.ok()) {
    return absl::Status(reference.status().code(),
                        absl::StrCat("reference ", request.reference.display, ": ",
                                     reference.status().message()));
  }
  if (reference->size != request.size) {
    return absl::FailedPreconditionError(absl::StrCat(
        "reference ", request.reference.display, " is no longer ", request.size, " bytes long"));
  }
  files.push_back(*std::move(reference));
  absl::StatusOr<std::vector<Extent>> ref_extents = ReadExtents(files[0].fd.get());
  if (!ref_extents.ok()) return ref_extents.status();

  const size_t n = request.destinations.size();
  std::vector<DedupeOutcome> outcomes(n);
  std::vector<size_t> usable;  // destinations opened, as indices into files
  std::vector<size_t> file_of(n, 0);
  for (size_t i = 0; i < n; ++i) {
    outcomes[i].destination_path = request.destinations[i].display;
    absl::StatusOr<OpenedFile> dest = Open(request.destinations[i]);
    if (!dest.ok()) {
      outcomes[i].kind = DedupeOutcome::Kind::kFailed;
      outcomes[i].error = dest.status();
      continue;
    }
    if (dest->size != request.size) {
      outcomes[i].kind = DedupeOutcome::Kind::kDiffers;
      continue;
    }
    file_of[i] = files.size();
    files.push_back(*std::move(dest));
    usable.push_back(i);
  }
  std::vector<FileNames> names;
  for (const OpenedFile& f : files) names.push_back(NamesOf(f.fd.get()));

  // Runs with `source` (an index into files) for the destinations `subset` (indices
  // into the request), then checks the reference kept its extents.
  auto run_with = [&](size_t source, const std::vector<size_t>& subset) -> absl::Status {
    std::vector<uint64_t> inos, name_bytes;
    for (size_t i : subset) {
      inos.push_back(files[file_of[i]].ino);
      name_bytes.push_back(names[file_of[i]][0].size() + 1);
    }
    Split split = SplitInvocations(files[source].ino, names[source][0].size() + 1, inos,
                                   name_bytes, options_.max_files_per_run,
                                   options_.max_arg_length);
    for (size_t k : split.same_as_source) {
      outcomes[subset[k]].kind = DedupeOutcome::Kind::kFailed;
      outcomes[subset[k]].error = absl::FailedPreconditionError(
          "has the reference's inode number (a snapshot's copy of it), which duperemove "
          "cannot take in one run with it, and no other copy shares the reference's "
          "extents yet");
    }
    for (const std::vector<size_t>& run : split.runs) {
      std::vector<size_t> dests;
      for (size_t k : run) dests.push_back(file_of[subset[k]]);
      absl::StatusOr<std::vector<DedupeOutcome>> part =
          RunOnce(*dialect, files, names, source, dests, request.size);
      if (!part.ok()) return part.status();
      for (size_t j = 0; j < run.size(); ++j) {
        DedupeOutcome& out = outcomes[subset[run[j]]];
        (*part)[j].destination_path = out.destination_path;
        out = std::move((*part)[j]);
      }
      absl::StatusOr<std::vector<Extent>> after = ReadExtents(files[0].fd.get());
      if (!after.ok()) return after.status();
      if (!SharesAllExtents(*ref_extents, *after)) {
        return BackendFailure(
            absl::StatusCode::kInternal,
            absl::StrCat("duperemove ", dialect->version.text, " changed the extents of the "
                         "reference ", request.reference.display,
                         ": it did not keep the file btrdupd gave as the source. btrdupd "
                         "stops using it; use --backend=native"));
      }
    }
    return absl::OkStatus();
  };

  absl::Status ran = run_with(0, usable);
  if (!ran.ok()) return ran;

  // Copies with the reference's inode number: with a stand-in source that shares all of
  // the reference's extents by now.
  std::vector<size_t> same_ino;
  for (size_t i : usable) {
    if (files[file_of[i]].ino == files[0].ino) same_ino.push_back(i);
  }
  if (!same_ino.empty()) {
    std::optional<size_t> stand_in;
    for (size_t i : usable) {
      if (outcomes[i].kind != DedupeOutcome::Kind::kDeduped ||
          files[file_of[i]].ino == files[0].ino) {
        continue;
      }
      absl::StatusOr<bool> shares =
          SharesAllExtents(files[0].fd.get(), files[file_of[i]].fd.get());
      if (shares.ok() && *shares) {
        stand_in = file_of[i];
        break;
      }
    }
    if (stand_in.has_value()) {
      ran = run_with(*stand_in, same_ino);
      if (!ran.ok()) return ran;
    }
  }
  return outcomes;
}

}  // namespace btrdupd
