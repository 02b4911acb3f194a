// The status reply's JSON: escaping of arbitrary bytes, the writer's structure, the
// reader, and a full DaemonStatus round trip (daemon/status_json.h).

#include "daemon/status_json.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace btrdupd {
namespace {

TEST(JsonQuoteTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(JsonQuote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonQuote("line\nnext\ttab\r"), "\"line\\nnext\\ttab\\r\"");
  EXPECT_EQ(JsonQuote(std::string("nul\0x", 5)), "\"nul\\u0000x\"");
  EXPECT_EQ(JsonQuote("\x1b[0m"), "\"\\u001b[0m\"");
}

TEST(JsonQuoteTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(JsonQuote("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"");
  // A lone continuation byte, a truncated sequence, an overlong '/', a surrogate.
  EXPECT_EQ(JsonQuote("a\x80z"), "\"a\xEF\xBF\xBDz\"");
  EXPECT_EQ(JsonQuote("a\xC3"), "\"a\xEF\xBF\xBD\"");
  EXPECT_EQ(JsonQuote("\xC0\xAF"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
  EXPECT_EQ(JsonQuote("\xED\xA0\x80"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

TEST(JsonQuoteTest, EveryByteStringParsesBack) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  absl::StatusOr<JsonValue> v = ParseJson(JsonQuote(all));
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->type, JsonValue::Type::kString);
  EXPECT_EQ(v->string.substr(0, 128), all.substr(0, 128));  // ASCII survives exactly
}

TEST(JsonWriterTest, NestsWithCommasAndWritesTimesAndNulls) {
  JsonWriter w;
  w.BeginObject();
  w.Key("a").Int(-3);
  w.Key("b").BeginArray().Uint(1).Bool(false).Null().Double(0.5).EndArray();
  w.Key("c").BeginObject().EndObject();
  w.Key("t").Time(absl::FromUnixSeconds(0));
  w.Key("never").Time(absl::InfiniteFuture());
  w.Key("nan").Double(0.0 / 0.0);
  w.EndObject();
  EXPECT_EQ(w.str(),
            "{\"a\":-3,\"b\":[1,false,null,0.5],\"c\":{},"
            "\"t\":\"1970-01-01T00:00:00Z\",\"never\":null,\"nan\":null}");
}

TEST(ParseJsonTest, ReadsAllValueKinds) {
  absl::StatusOr<JsonValue> v = ParseJson(
      " {\"s\":\"x\\u00e9\\ud83d\\ude00\\n\",\"n\":-1.5e2,\"t\":true,\"z\":null,"
      "\"a\":[1,[2]],\"o\":{\"k\":0}} ");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->Find("s")->string, "x\xC3\xA9\xF0\x9F\x98\x80\n");
  EXPECT_DOUBLE_EQ(v->Find("n")->number, -150);
  EXPECT_TRUE(v->Find("t")->boolean);
  EXPECT_EQ(v->Find("z")->type, JsonValue::Type::kNull);
  EXPECT_EQ(v->Find("a")->array.size(), 2u);
  EXPECT_DOUBLE_EQ(v->Find("o")->Find("k")->number, 0);
  EXPECT_EQ(v->Find("missing"), nullptr);
}

TEST(ParseJsonTest, RejectsMalformedInput) {
  for (const char* bad : {"", "{", "{\"a\":}", "[1,]", "\"unterminated", "tru", "01x",
                          "{\"a\":1} extra", "\"\\ud800\"", "\"bad \\q escape\"",
                          "\"raw\ncontrol\""}) {
    const absl::Status parsed = ParseJson(bad).status();
    EXPECT_TRUE(absl::IsInvalidArgument(parsed)) << bad << ": " << parsed;
  }
  std::string deep(100, '[');
  deep += std::string(100, ']');
  const absl::Status parsed = ParseJson(deep).status();
  EXPECT_TRUE(absl::IsInvalidArgument(parsed)) << parsed;
  EXPECT_NE(parsed.message().find("nested too deep"), absl::string_view::npos) << parsed;
}

TEST(DaemonStatusJsonTest, RoundTripsEveryField) {
  DaemonStatus s;
  s.pid = 4242;
  s.uptime = absl::Seconds(3725);
  s.version = "0.1.0";
  s.volume = "/mnt/data \"quoted\"\n";
  s.volume_name = "mnt-data";
  s.state = "ok";
  s.activity = "hashing /mnt/data/\xFF.bin";
  s.scan_pending = true;
  s.files_to_hash = 7;
  s.files_to_dedupe = 3;
  s.database.files_waiting = 11;
  s.database.files_tracked = 300000;
  s.database.duplicate_groups = 12;
  s.files_per_second_last_minute = 2.5;
  s.bytes_per_second_since_start = 1e6;
  s.database.files_deduped = 99;
  s.database.bytes_deduped = 5'000'000'000ull;
  s.database.bytes_freed = 4'000'000'000ull;
  s.database.bytes_saveable = 4096;
  s.database.files_skipped = 2;
  s.errors = {{"scan", 1}, {"dedupe", 4}};
  s.last_error = "scan: /mnt/data: No such device";
  s.last_full_scan = absl::FromUnixSeconds(1'800'000'000);
  s.next_full_scan = std::nullopt;
  s.last_vacuum = absl::FromUnixSeconds(1'800'000'100);
  s.database.database_bytes = 123456;

  absl::StatusOr<JsonValue> v = ParseJson(DaemonStatusToJson(s));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_DOUBLE_EQ(v->Find("pid")->number, 4242);
  EXPECT_DOUBLE_EQ(v->Find("uptime_seconds")->number, 3725);
  EXPECT_EQ(v->Find("version")->string, "0.1.0");
  EXPECT_EQ(v->Find("volume")->string, s.volume);
  EXPECT_EQ(v->Find("activity")->string, "hashing /mnt/data/\xEF\xBF\xBD.bin");
  EXPECT_TRUE(v->Find("queues")->Find("scan_pending")->boolean);
  EXPECT_DOUBLE_EQ(v->Find("queues")->Find("files_to_hash")->number, 7);
  EXPECT_DOUBLE_EQ(v->Find("queues")->Find("files_to_dedupe")->number, 3);
  EXPECT_DOUBLE_EQ(v->Find("queues")->Find("files_waiting")->number, 11);
  EXPECT_DOUBLE_EQ(
      v->Find("rate")->Find("last_minute")->Find("files_per_second")->number, 2.5);
  EXPECT_DOUBLE_EQ(
      v->Find("rate")->Find("since_start")->Find("bytes_per_second")->number, 1e6);
  EXPECT_DOUBLE_EQ(v->Find("bytes_shared")->number, 5e9);
  EXPECT_DOUBLE_EQ(v->Find("bytes_freed")->number, 4e9);
  EXPECT_DOUBLE_EQ(v->Find("errors")->Find("dedupe")->number, 4);
  EXPECT_EQ(v->Find("last_full_scan")->string, "2027-01-15T08:00:00Z");
  EXPECT_EQ(v->Find("next_full_scan")->type, JsonValue::Type::kNull);
  EXPECT_EQ(v->Find("last_incremental_scan")->type, JsonValue::Type::kNull);
  EXPECT_EQ(v->Find("last_vacuum")->string, "2027-01-15T08:01:40Z");
  EXPECT_DOUBLE_EQ(v->Find("database_bytes")->number, 123456);
}

TEST(DaemonStatusJsonTest, ErrorReplyIsAnObjectWithTheMessage) {
  absl::StatusOr<JsonValue> v = ParseJson(ErrorReplyJson("request longer than 4096 bytes"));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->Find("error")->string, "request longer than 4096 bytes");
}

}  // namespace
}  // namespace btrdupd
