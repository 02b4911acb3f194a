#include "daemon/status_json.h"

#include <cassert>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon/utf8.h"

namespace btrdupd {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD in UTF-8
constexpr int kMaxDepth = 64;

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

std::string JsonQuote(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() + 2);
  out.push_back('"');
  size_t i = 0;
  while (i < bytes.size()) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (c < 0x20 || c == 0x7F) {
      switch (c) {
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default: absl::StrAppendFormat(&out, "\\u%04x", c); break;
      }
      ++i;
    } else {
      size_t len = Utf8SequenceLength(bytes, i);
      if (len == 0) {
        out += kReplacement;
        ++i;
      } else {
        out.append(bytes.data() + i, len);
        i += len;
      }
    }
  }
  out.push_back('"');
  return out;
}

void JsonWriter::BeforeValue() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_.push_back(',');
    first_.back() = false;
  }
}

JsonWriter& JsonWriter::Open(char bracket) {
  BeforeValue();
  out_.push_back(bracket);
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::Close(char bracket) {
  assert(!first_.empty());
  first_.pop_back();
  out_.push_back(bracket);
  return *this;
}

JsonWriter& JsonWriter::BeginObject() { return Open('{'); }
JsonWriter& JsonWriter::EndObject() { return Close('}'); }
JsonWriter& JsonWriter::BeginArray() { return Open('['); }
JsonWriter& JsonWriter::EndArray() { return Close(']'); }

JsonWriter& JsonWriter::Key(absl::string_view key) {
  BeforeValue();
  out_ += JsonQuote(key);
  out_.push_back(':');
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::String(absl::string_view value) {
  BeforeValue();
  out_ += JsonQuote(value);
  return *this;
}

JsonWriter& JsonWriter::Int(int64_t value) {
  BeforeValue();
  absl::StrAppend(&out_, value);
  return *this;
}

JsonWriter& JsonWriter::Uint(uint64_t value) {
  BeforeValue();
  absl::StrAppend(&out_, value);
  return *this;
}

JsonWriter& JsonWriter::Double(double value) {
  BeforeValue();
  if (!std::isfinite(value)) {
    out_ += "null";
  } else {
    absl::StrAppendFormat(&out_, "%.6g", value);
  }
  return *this;
}

JsonWriter& JsonWriter::Bool(bool value) {
  BeforeValue();
  out_ += value ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::Null() {
  BeforeValue();
  out_ += "null";
  return *this;
}

JsonWriter& JsonWriter::Time(absl::Time value) {
  if (value == absl::InfinitePast() || value == absl::InfiniteFuture()) return Null();
  return String(absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", value, absl::UTCTimeZone()));
}

JsonWriter& JsonWriter::OptionalTime(const std::optional<absl::Time>& value) {
  if (!value.has_value()) return Null();
  return Time(*value);
}

namespace {

// "name": {"files_per_second": f, "bytes_per_second": b}
void WriteRate(JsonWriter& w, absl::string_view name, double files, double bytes) {
  w.Key(name).BeginObject();
  w.Key("files_per_second").Double(files);
  w.Key("bytes_per_second").Double(bytes);
  w.EndObject();
}

// "name": {"<kind>": count, ...}
void WriteCounts(JsonWriter& w, absl::string_view name,
                 const std::map<std::string, int64_t>& counts) {
  w.Key(name).BeginObject();
  for (const auto& [kind, count] : counts) w.Key(kind).Int(count);
  w.EndObject();
}

}  // namespace

std::string DaemonStatusToJson(const DaemonStatus& s) {
  JsonWriter w;
  w.BeginObject();
  w.Key("pid").Int(s.pid);
  w.Key("uptime_seconds").Int(absl::ToInt64Seconds(s.uptime));
  w.Key("version").String(s.version);
  w.Key("volume").String(s.volume);
  w.Key("volume_name").String(s.volume_name);
  w.Key("state").String(s.state);
  w.Key("activity").String(s.activity);
  if (s.hashing.has_value()) {
    w.Key("hashing").BeginObject();
    w.Key("path").String(s.hashing->path);
    w.Key("bytes_done").Uint(s.hashing->bytes_done);
    w.Key("size").Uint(s.hashing->size);
    w.EndObject();
  }
  w.Key("queues").BeginObject();
  w.Key("scan_pending").Bool(s.scan_pending);
  w.Key("files_to_hash").Int(s.files_to_hash);
  w.Key("files_to_dedupe").Int(s.files_to_dedupe);
  w.Key("files_waiting").Int(s.files_waiting);
  w.EndObject();
  w.Key("files_tracked").Int(s.files_tracked);
  w.Key("duplicate_groups").Int(s.duplicate_groups);
  w.Key("rate").BeginObject();
  WriteRate(w, "last_minute", s.files_per_second_last_minute, s.bytes_per_second_last_minute);
  WriteRate(w, "since_start", s.files_per_second_since_start, s.bytes_per_second_since_start);
  w.EndObject();
  w.Key("files_deduped").Int(s.files_deduped);
  w.Key("bytes_shared").Uint(s.bytes_shared);
  w.Key("bytes_freed").Uint(s.bytes_freed);
  w.Key("bytes_saveable").Uint(s.bytes_saveable);
  w.Key("files_skipped").Int(s.files_skipped);
  WriteCounts(w, "skipped_by_kind", s.skipped_by_kind);
  WriteCounts(w, "errors", s.errors);
  w.Key("last_error").String(s.last_error);
  w.Key("last_full_scan").OptionalTime(s.last_full_scan);
  w.Key("last_incremental_scan").OptionalTime(s.last_incremental_scan);
  w.Key("next_full_scan").OptionalTime(s.next_full_scan);
  w.Key("next_change_check").OptionalTime(s.next_change_check);
  w.Key("last_vacuum").OptionalTime(s.last_vacuum);
  w.Key("next_vacuum").OptionalTime(s.next_vacuum);
  w.Key("last_dedupe_reset").OptionalTime(s.last_dedupe_reset);
  w.Key("next_dedupe_reset").OptionalTime(s.next_dedupe_reset);
  w.Key("database_bytes").Int(s.database_bytes);
  w.EndObject();
  return w.str();
}

std::string ErrorReplyJson(absl::string_view message) {
  JsonWriter w;
  w.BeginObject().Key("error").String(message).EndObject();
  return w.str();
}

// --- Reader ---

const JsonValue* JsonValue::Find(absl::string_view key) const {
  if (type != Type::kObject) return nullptr;
  for (const auto& [k, v] : object) {
    if (k == key) return &v;
  }
  return nullptr;
}

namespace {

class Parser {
 public:
  explicit Parser(absl::string_view text) : s_(text) {}

  absl::StatusOr<JsonValue> ParseDocument() {
    JsonValue v;
    absl::Status st = ParseValue(v, 0);
    if (!st.ok()) return st;
    SkipSpace();
    if (pos_ != s_.size()) return Error("trailing characters after the value");
    return v;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("JSON at byte ", pos_, ": ", what));
  }

  void SkipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool Consume(absl::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  absl::Status ParseValue(JsonValue& v, int depth) {
    if (depth > kMaxDepth) return Error("nested too deep");
    SkipSpace();
    if (pos_ >= s_.size()) return Error("unexpected end");
    const char c = s_[pos_];
    if (c == '{') return ParseObject(v, depth);
    if (c == '[') return ParseArray(v, depth);
    if (c == '"') {
      v.type = JsonValue::Type::kString;
      return ParseString(v.string);
    }
    if (Consume("true")) {
      v.type = JsonValue::Type::kBool;
      v.boolean = true;
      return absl::OkStatus();
    }
    if (Consume("false")) {
      v.type = JsonValue::Type::kBool;
      return absl::OkStatus();
    }
    if (Consume("null")) {
      v.type = JsonValue::Type::kNull;
      return absl::OkStatus();
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(v);
    return Error("expected a value");
  }

  absl::Status ParseObject(JsonValue& v, int depth) {
    v.type = JsonValue::Type::kObject;
    return ParseElements('}', "expected ',' or '}'", [&]() -> absl::Status {
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Error("expected a key");
      std::string key;
      absl::Status st = ParseString(key);
      if (!st.ok()) return st;
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != ':') return Error("expected ':'");
      ++pos_;
      JsonValue member;
      st = ParseValue(member, depth + 1);
      if (!st.ok()) return st;
      v.object.emplace_back(std::move(key), std::move(member));
      return absl::OkStatus();
    });
  }

  absl::Status ParseArray(JsonValue& v, int depth) {
    v.type = JsonValue::Type::kArray;
    return ParseElements(']', "expected ',' or ']'", [&]() -> absl::Status {
      JsonValue element;
      absl::Status st = ParseValue(element, depth + 1);
      if (!st.ok()) return st;
      v.array.push_back(std::move(element));
      return absl::OkStatus();
    });
  }

  // From the opening bracket at pos_ through `close`: nothing, or elements read by
  // `element` separated by commas.
  absl::Status ParseElements(char close, absl::string_view bad_separator,
                             absl::FunctionRef<absl::Status()> element) {
    ++pos_;  // '{' or '['
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == close) {
      ++pos_;
      return absl::OkStatus();
    }
    for (;;) {
      absl::Status st = element();
      if (!st.ok()) return st;
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == close) {
        ++pos_;
        return absl::OkStatus();
      }
      return Error(bad_separator);
    }
  }

  absl::Status ParseHex4(uint32_t& out) {
    if (pos_ + 4 > s_.size()) return Error("short \\u escape");
    out = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[pos_++];
      out <<= 4;
      if (h >= '0' && h <= '9') {
        out |= h - '0';
      } else if (h >= 'a' && h <= 'f') {
        out |= h - 'a' + 10;
      } else if (h >= 'A' && h <= 'F') {
        out |= h - 'A' + 10;
      } else {
        return Error("bad \\u escape");
      }
    }
    return absl::OkStatus();
  }

  absl::Status ParseString(std::string& out) {
    ++pos_;  // '"'
    while (pos_ < s_.size()) {
      const char c = s_[pos_++];
      if (c == '"') return absl::OkStatus();
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character in string");
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) break;
      const char e = s_[pos_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          absl::Status st = ParseHex4(cp);
          if (!st.ok()) return st;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t low = 0;
            if (!Consume("\\u")) return Error("lone high surrogate");
            st = ParseHex4(low);
            if (!st.ok()) return st;
            if (low < 0xDC00 || low > 0xDFFF) return Error("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return Error("lone low surrogate");
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return Error("bad escape");
      }
    }
    return Error("unterminated string");
  }

  absl::Status ParseNumber(JsonValue& v) {
    const size_t start = pos_;
    if (s_[pos_] == '-') ++pos_;
    auto digits = [&] {
      size_t n = 0;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
        ++pos_;
        ++n;
      }
      return n;
    };
    if (digits() == 0) return Error("bad number");
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) return Error("bad number");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) return Error("bad number");
    }
    v.type = JsonValue::Type::kNumber;
    v.number = std::strtod(std::string(s_.substr(start, pos_ - start)).c_str(), nullptr);
    return absl::OkStatus();
  }

  absl::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<JsonValue> ParseJson(absl::string_view text) {
  return Parser(text).ParseDocument();
}

}  // namespace btrdupd
