#include "daemon/json.h"

#include <cstdlib>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace btrdupd {
namespace {

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
