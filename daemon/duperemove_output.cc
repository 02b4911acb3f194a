#include "daemon/duperemove_output.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "ioctl/errno_status.h"

namespace btrdupd {
namespace {

// duperemove's word for FILE_DEDUPE_RANGE_DIFFERS.
constexpr int kStatusDiffers = 1;

struct Report {
  // The kernel's per-destination status (1 "differs", -errno a refusal), or -errno of
  // an "Error E: ..." line; 0 when no errno is known.
  int status = 0;
  std::string text;
};

// What duperemove printed about the file called `path`.
std::optional<Report> FindReport(absl::string_view output, const std::string& path) {
  const std::string status_key = absl::StrCat("Dedupe for file \"", path, "\" had status (");
  size_t at = output.find(status_key);
  if (at != absl::string_view::npos) {
    absl::string_view rest = output.substr(at + status_key.size());
    const size_t close = rest.find(')');
    int value = 0;
    if (close != absl::string_view::npos && absl::SimpleAtoi(rest.substr(0, close), &value)) {
      Report report;
      report.status = value;
      absl::string_view words = rest.substr(close + 1);
      const size_t q1 = words.find('"');
      const size_t q2 = q1 == absl::string_view::npos ? q1 : words.find('"', q1 + 1);
      report.text = q2 == absl::string_view::npos
                        ? "unknown status"
                        : std::string(words.substr(q1 + 1, q2 - q1 - 1));
      return report;
    }
  }
  // "Error 2: No such file or directory while getting path to file PATH. Skipping."
  size_t pos = 0;
  while ((pos = output.find("Error ", pos)) != absl::string_view::npos) {
    const size_t end = output.find(". Skipping.", pos);
    absl::string_view line = output.substr(
        pos, end == absl::string_view::npos ? absl::string_view::npos : end - pos);
    if (absl::EndsWith(line, absl::StrCat(" ", path)) ||
        absl::StrContains(line, absl::StrCat("\"", path, "\""))) {
      Report report;
      absl::string_view number = line.substr(6);
      number = number.substr(0, number.find(':'));
      int err = 0;
      report.status = absl::SimpleAtoi(number, &err) && err > 0 ? -err : 0;
      report.text = std::string(line.substr(0, 300));
      return report;
    }
    pos += 6;
  }
  // "PATH: Skipping dedupe." (the file could not be opened)
  const std::string skipped = absl::StrCat(path, ": Skipping dedupe.");
  if (absl::StrContains(output, skipped)) {
    Report report;
    report.status = 0;
    report.text = skipped;
    return report;
  }
  return std::nullopt;
}

}  // namespace

std::string OutputTail(absl::string_view output) {
  output = absl::StripTrailingAsciiWhitespace(output);
  const size_t nl = output.rfind('\n');
  if (nl != absl::string_view::npos) output.remove_prefix(nl + 1);
  return std::string(output.substr(0, 300));
}

bool DuperemoveQueued(absl::string_view output, const FileNames& names) {
  for (const std::string& name : names) {
    if (absl::StrContains(output, absl::StrCat("Queue entire file for dedupe: ", name, "\n"))) {
      return true;
    }
  }
  return false;
}

std::optional<int> DuperemoveIoctlFailure(absl::string_view output) {
  constexpr absl::string_view kKey = "FAILURE: Dedupe ioctl returns ";
  const size_t at = output.find(kKey);
  if (at == absl::string_view::npos) return std::nullopt;
  absl::string_view rest = output.substr(at + kKey.size());
  rest = rest.substr(0, rest.find(':'));
  int err = 0;
  if (!absl::SimpleAtoi(rest, &err) || err <= 0) err = EIO;
  return err;
}

std::vector<DedupeOutcome> ParseDuperemoveOutcomes(const std::vector<FileNames>& names,
                                                   uint64_t size, absl::string_view output) {
  std::vector<DedupeOutcome> outcomes;
  for (const FileNames& file : names) {
    DedupeOutcome outcome;
    std::optional<Report> report;
    for (size_t i = 0; i < file.size() && !report.has_value(); ++i) {
      report = FindReport(output, file[i]);
    }
    if (report.has_value()) {
      if (report->status == kStatusDiffers) {
        outcome.kind = DedupeOutcome::Kind::kDiffers;
      } else {
        outcome.kind = DedupeOutcome::Kind::kFailed;
        // The errno travels with the error (the engine tells EROFS from ETXTBSY by it).
        const std::string message = absl::StrCat("duperemove: ", report->text);
        outcome.error = report->status < 0 ? ErrnoToStatusWithMessage(-report->status, message)
                                           : absl::InternalError(message);
      }
    } else if (!DuperemoveQueued(output, file)) {
      outcome.kind = DedupeOutcome::Kind::kFailed;
      outcome.error = absl::InternalError(
          absl::StrCat("duperemove did not queue it for dedupe: ", OutputTail(output)));
    } else {
      outcome.kind = DedupeOutcome::Kind::kDeduped;
      outcome.bytes_deduped = size;
    }
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

}  // namespace btrdupd
