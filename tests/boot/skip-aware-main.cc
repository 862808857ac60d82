// main() for test programs whose every test may be impossible on a host
// (a kernel or a VT-x host missing): when all that ran were skipped, the
// program exits with 77, which meson reports as SKIP (not as a pass), beside
// the reasons GoogleTest printed.
//
// These tests print a guest's whole console with a failure, so the fact
// that failed can sit thousands of lines above the end of the log, out of
// reach of a CI report that keeps only the tail: each failure's first lines
// are said again, last.
#include <gtest/gtest.h>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

class FailureRecap : public ::testing::EmptyTestEventListener {
 public:
  // Noted here: asking the UnitTest from OnTestPartResult would deadlock
  // (it reports with its own lock held).
  void OnTestStart(const ::testing::TestInfo& test) override { current = test.name(); }
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::ostringstream brief;
    brief << (result.file_name() ? result.file_name() : "?") << ':' << result.line_number() << ':';
    std::istringstream message(result.message());
    int lines = 0;
    for (std::string line; lines < MAX_LINES && std::getline(message, line); ++lines) {
      if (line.size() > MAX_LINE) line = line.substr(0, MAX_LINE) + "...";
      brief << "\n    " << line;
    }
    if (message.peek() != EOF) brief << "\n    [rest above]";
    failures.push_back(current + ": " + brief.str());
  }
  void OnTestProgramEnd(const ::testing::UnitTest&) override {
    if (failures.empty()) return;
    std::cout << "\nFailures, said again without the consoles:\n";
    for (const auto& failure : failures) std::cout << "  " << failure << '\n';
    std::cout << std::flush;
  }

 private:
  static constexpr int MAX_LINES = 8;
  static constexpr size_t MAX_LINE = 300;
  std::string current;
  std::vector<std::string> failures;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::UnitTest::GetInstance()->listeners().Append(new FailureRecap);
  int status = RUN_ALL_TESTS();
  const auto& run = *::testing::UnitTest::GetInstance();
  if (status == 0 && run.test_to_run_count() > 0 && run.skipped_test_count() == run.test_to_run_count())
    return 77;
  return status;
}
