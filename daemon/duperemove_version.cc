#include "daemon/duperemove_version.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace btrdupd {
namespace {

constexpr char kSupported[] = "0.11, 0.12, 0.13 and 0.15";

}  // namespace

absl::StatusOr<DuperemoveVersion> ParseDuperemoveVersion(absl::string_view output) {
  absl::string_view text = absl::StripAsciiWhitespace(output);
  const absl::string_view quoted = text.substr(0, 200);
  const size_t name = text.find("duperemove");
  if (name != absl::string_view::npos) {
    absl::string_view rest = absl::StripLeadingAsciiWhitespace(text.substr(name + 10));
    const size_t end = rest.find_first_of(" \t\r\n");
    absl::string_view word = rest.substr(0, end);
    if (!word.empty() && (word[0] == 'v' || word[0] == 'V')) {
      std::vector<absl::string_view> parts = absl::StrSplit(word.substr(1), '.');
      DuperemoveVersion v;
      v.text = std::string(word);
      int* fields[] = {&v.major, &v.minor, &v.patch};
      bool ok = parts.size() >= 2 && parts.size() <= 3;
      for (size_t i = 0; ok && i < parts.size(); ++i) {
        ok = absl::SimpleAtoi(parts[i], fields[i]) && *fields[i] >= 0;
      }
      if (ok) return v;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "cannot read duperemove's version from '", quoted,
      "' (expected 'duperemove vMAJOR.MINOR.PATCH')"));
}

absl::StatusOr<DuperemoveDialect> DialectFor(const DuperemoveVersion& version) {
  DuperemoveDialect dialect;
  dialect.version = version;
  if (version.major == 0 && (version.minor == 11 || version.minor == 12)) {
    return dialect;
  }
  if (version.major == 0 && version.minor == 13) {
    dialect.read_only_flag = false;
    return dialect;
  }
  if (version.major == 0 && version.minor == 15) {
    dialect.read_only_flag = false;
    dialect.reference_first = false;
    return dialect;
  }
  std::string why;
  if (version.major == 0 && version.minor == 14) {
    why = "its --fdupes mode takes the size of the name it is given (lstat), which is "
          "wrong for the files btrdupd opens and passes as /proc/self/fd/N";
  } else if (version.major == 0 && version.minor < 11) {
    why = "it is older than any release btrdupd knows";
  } else {
    why = "it is newer than any release btrdupd knows: which file of a group it keeps "
          "as the source has changed before, and a wrong guess would dedupe the "
          "reference into another file";
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "duperemove ", version.text, " is not supported: ", why, ". Supported releases: ",
      kSupported, ". Install one of those or use --backend=native"));
}

}  // namespace btrdupd
