// The three ways btrdupd prints bytes it does not control (file names): for a log line
// (EscapeControlCharacters), for a path a user may copy back (PrintablePath), for a
// Prometheus label (metrics: tested through FormatMetrics in metrics_test).

#include <string>

#include "daemon/one_shot.h"
#include "daemon/utf8.h"
#include "gtest/gtest.h"

namespace btrdupd {
namespace {

// ESC [ 3 1 m (a terminal colour), a C1 CSI (U+009B), a stray 0xff, and valid "é" and "日".
const std::string kHostile = "a\nb\x1b[31m\xc2\x9b\xff\\\xc3\xa9\xe6\x97\xa5";

TEST(Utf8Test, EscapeControlCharactersEscapesControlsAndBadBytesKeepsTextAndBackslash) {
  EXPECT_EQ(EscapeControlCharacters(kHostile),
            "a\\nb\\x1b[31m\\xc2\\x9b\\xff\\\xc3\xa9\xe6\x97\xa5");
}

TEST(Utf8Test, PrintablePathAlsoEscapesBackslashSoItCanBeReadBack) {
  EXPECT_EQ(PrintablePath(kHostile), "a\\x0ab\\x1b[31m\\xc2\\x9b\\xff\\x5c\xc3\xa9\xe6\x97\xa5");
}

TEST(Utf8Test, MapUtf8HandsEachByteOfATruncatedSequenceToBadByte) {
  int bad = 0;
  const std::string out = MapUtf8(
      "x\xe6\x97", [](std::string& o, unsigned char c) { o.push_back(static_cast<char>(c)); },
      [&](std::string& o, unsigned char) {
        ++bad;
        o.push_back('?');
      },
      /*c1_is_bad=*/false);
  EXPECT_EQ(out, "x??");
  EXPECT_EQ(bad, 2);
}

TEST(Utf8Test, MapUtf8KeepsC1ControlsUnlessTheyCountAsBad) {
  auto keep = [](std::string& o, unsigned char c) { o.push_back(static_cast<char>(c)); };
  auto mark = [](std::string& o, unsigned char) { o.push_back('?'); };
  EXPECT_EQ(MapUtf8("\xc2\x9b", keep, mark, /*c1_is_bad=*/false), "\xc2\x9b");
  EXPECT_EQ(MapUtf8("\xc2\x9b", keep, mark, /*c1_is_bad=*/true), "??");
}

}  // namespace
}  // namespace btrdupd
