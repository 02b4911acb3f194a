// Looking at a database file behind the index's back, for tests of the index itself:
// a raw SQLite connection (to build odd files, or to read rows), the file's bytes, and
// whether a path exists.

#ifndef BTRDUPD_TESTS_TESTING_RAW_DATABASE_H_
#define BTRDUPD_TESTS_TESTING_RAW_DATABASE_H_

#include <string>
#include <vector>

namespace btrdupd {
namespace testing {

// Runs `sql` on a connection of its own; one string per row, its columns joined by '|'
// (NULL as "NULL"). A failure is a non-fatal test failure naming the SQL.
std::vector<std::string> RawQuery(const std::string& db_path, const std::string& sql);

// The whole file at `path` ("" if it cannot be read).
std::string ReadBytes(const std::string& path);

// True if `path` names anything (stat(2) succeeds).
bool Exists(const std::string& path);

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_RAW_DATABASE_H_
