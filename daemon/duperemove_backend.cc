#include "daemon/duperemove_backend.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "daemon/subprocess.h"
#include "ioctl/errno_status.h"

namespace btrdupd {
namespace {

// duperemove's word for FILE_DEDUPE_RANGE_DIFFERS.
constexpr int kStatusDiffers = 1;

// The last line of `output` for use in an error message.
std::string Tail(absl::string_view output) {
  output = absl::StripTrailingAsciiWhitespace(output);
  const size_t nl = output.rfind('\n');
  if (nl != absl::string_view::npos) output.remove_prefix(nl + 1);
  return std::string(output.substr(0, 300));
}

// What duperemove printed about `path`: `Dedupe for file "PATH" had status (N) "TEXT".`
// (N is the kernel's per-destination status: 1 for "differs", -errno for a refusal)
// or an `Error E: ...` line naming the file (E an errno). Returns false if nothing.
// A report whose errno is unknown sets *status to 0.
bool FindReport(absl::string_view output, const std::string& path, int* status,
                std::string* text) {
  const std::string status_key = absl::StrCat("Dedupe for file \"", path, "\" had status (");
  size_t at = output.find(status_key);
  if (at != absl::string_view::npos) {
    absl::string_view rest = output.substr(at + status_key.size());
    const size_t close = rest.find(')');
    int value = -1;
    if (close != absl::string_view::npos && absl::SimpleAtoi(rest.substr(0, close), &value)) {
      *status = value;
      absl::string_view words = rest.substr(close + 1);
      const size_t q1 = words.find('"');
      const size_t q2 = q1 == absl::string_view::npos ? q1 : words.find('"', q1 + 1);
      *text = q2 == absl::string_view::npos ? "unknown status"
                                            : std::string(words.substr(q1 + 1, q2 - q1 - 1));
      return true;
    }
  }
  // "Error 2: No such file or directory while getting path to file PATH. Skipping."
  size_t pos = 0;
  constexpr absl::string_view kError = "Error ";
  while ((pos = output.find("Error ", pos)) != absl::string_view::npos) {
    const size_t end = output.find(". Skipping.", pos);
    absl::string_view line = output.substr(pos, end == absl::string_view::npos
                                                    ? absl::string_view::npos
                                                    : end - pos);
    if (absl::EndsWith(line, absl::StrCat(" ", path)) ||
        absl::StrContains(line, absl::StrCat("\"", path, "\""))) {
      absl::string_view number = line.substr(kError.size());
      number = number.substr(0, number.find(':'));
      int err = 0;
      *status = absl::SimpleAtoi(number, &err) && err > 0 ? -err : 0;
      *text = std::string(line.substr(0, 300));
      return true;
    }
    pos += 6;
  }
  return false;
}

// Whether whole-file mode printed "Queue entire file for dedupe: PATH" (one line; such
// paths hold no newline).
bool WasQueued(absl::string_view output, const std::string& path) {
  const std::string line = absl::StrCat("Queue entire file for dedupe: ", path, "\n");
  return absl::StrContains(output, line);
}

}  // namespace

DuperemoveBackend::DuperemoveBackend(Options options) : options_(std::move(options)) {}

absl::Status DuperemoveBackend::CheckAvailable() const {
  absl::StatusOr<std::string> program = FindExecutable(options_.binary);
  if (!program.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--backend=duperemove needs the duperemove program: ", program.status().message(),
        ". Install it (Debian/Ubuntu: apt-get install duperemove) or use "
        "--backend=native"));
  }
  absl::StatusOr<ProcessResult> run = RunProcess({*program, "--version"});
  if (!run.ok() || run->exit_code != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--backend=duperemove: '", *program, " --version' failed: ",
        run.ok() ? Tail(run->output) : std::string(run.status().message()),
        ". Fix the duperemove installation or use --backend=native"));
  }
  return absl::OkStatus();
}

std::vector<std::vector<size_t>> DuperemoveBackend::SplitByArgLength(
    const std::string& reference, const std::vector<std::string>& destinations,
    uint64_t max_arg_length) {
  std::vector<std::vector<size_t>> batches;
  const uint64_t base = reference.size() + 1;
  uint64_t used = base;
  for (size_t i = 0; i < destinations.size(); ++i) {
    const uint64_t need = destinations[i].size() + 1;
    if (batches.empty() || (used + need > max_arg_length && !batches.back().empty())) {
      batches.emplace_back();
      used = base;
    }
    batches.back().push_back(i);
    used += need;
  }
  return batches;
}

std::vector<DedupeOutcome> DuperemoveBackend::ParseOutcomes(
    const std::vector<std::string>& destinations, uint64_t size, int exit_code,
    const std::string& output) {
  std::vector<DedupeOutcome> outcomes;
  for (const std::string& path : destinations) {
    DedupeOutcome outcome;
    outcome.destination_path = path;
    int status = 0;
    std::string text;
    if (FindReport(output, path, &status, &text)) {
      if (status == kStatusDiffers) {
        outcome.kind = DedupeOutcome::Kind::kDiffers;
      } else {
        // The errno travels with the error (the engine tells EROFS from ETXTBSY by it).
        outcome.kind = DedupeOutcome::Kind::kFailed;
        const std::string message = absl::StrCat("duperemove: ", text);
        outcome.error = status < 0 ? ErrnoToStatusWithMessage(-status, message)
                                   : absl::InternalError(message);
      }
    } else if (exit_code != 0) {
      outcome.kind = DedupeOutcome::Kind::kFailed;
      outcome.error = absl::InternalError(
          absl::StrCat("duperemove exited with status ", exit_code, ": ", Tail(output)));
    } else {
      outcome.kind = DedupeOutcome::Kind::kDeduped;
      outcome.bytes_deduped = size;
    }
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

absl::StatusOr<std::vector<DedupeOutcome>> DuperemoveBackend::RunBatch(
    const std::string& program, const std::string& reference,
    const std::vector<std::string>& batch, uint64_t size) {
  bool has_newline = absl::StrContains(reference, '\n');
  for (const std::string& path : batch) has_newline |= absl::StrContains(path, '\n');
  // -b 4096: duperemove ignores files smaller than its block size (128 KiB by default).
  std::vector<std::string> argv = {program, "-d", "-A", "-b", "4096", "--io-threads=1"};
  std::string input;
  if (has_newline) {
    argv.push_back("-q");
    argv.push_back("--");
    argv.push_back(reference);
    argv.insert(argv.end(), batch.begin(), batch.end());
  } else {
    argv.push_back("--fdupes");
    absl::StrAppend(&input, reference, "\n");
    for (const std::string& path : batch) absl::StrAppend(&input, path, "\n");
    input.push_back('\n');
  }
  absl::StatusOr<ProcessResult> run = RunProcess(argv, input);
  if (!run.ok()) return run.status();
  std::vector<DedupeOutcome> outcomes =
      ParseOutcomes(batch, size, run->exit_code, run->output);
  if (!has_newline) {
    // Whole-file mode names every file it queues; one it did not queue was not tried.
    const bool reference_queued = WasQueued(run->output, reference);
    for (DedupeOutcome& outcome : outcomes) {
      if (outcome.kind != DedupeOutcome::Kind::kDeduped) continue;
      if (reference_queued && WasQueued(run->output, outcome.destination_path)) continue;
      outcome.kind = DedupeOutcome::Kind::kFailed;
      outcome.bytes_deduped = 0;
      outcome.error = absl::InternalError(absl::StrCat(
          "duperemove did not queue ",
          reference_queued ? outcome.destination_path : absl::StrCat("the reference ", reference),
          " for dedupe: ", Tail(run->output)));
    }
  }
  return outcomes;
}

absl::StatusOr<std::vector<DedupeOutcome>> DuperemoveBackend::Dedupe(
    const DedupeRequest& request) {
  // duperemove silently picks another target if the reference is unusable; refuse first.
  struct stat st;
  if (stat(request.reference_path.c_str(), &st) != 0) {
    const int err = errno;
    return btrdupd::ErrnoToStatus(err, absl::StrCat("reference ", request.reference_path));
  }
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != request.size) {
    return absl::FailedPreconditionError(
        absl::StrCat("reference ", request.reference_path,
                     " is no longer a regular file of ", request.size, " bytes"));
  }
  absl::StatusOr<std::string> program = FindExecutable(options_.binary);
  if (!program.ok()) return program.status();

  std::vector<DedupeOutcome> outcomes;
  for (const std::vector<size_t>& indices :
       SplitByArgLength(request.reference_path, request.destination_paths,
                        options_.max_arg_length)) {
    std::vector<std::string> batch;
    for (size_t i : indices) batch.push_back(request.destination_paths[i]);
    absl::StatusOr<std::vector<DedupeOutcome>> part =
        RunBatch(*program, request.reference_path, batch, request.size);
    if (!part.ok()) return part.status();
    for (DedupeOutcome& outcome : *part) outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

}  // namespace btrdupd
