// main() for test programs whose every test may be impossible on a host
// (a kernel or a VT-x host missing): when all that ran were skipped, the
// program exits with 77, which meson reports as SKIP (not as a pass), beside
// the reasons GoogleTest printed.
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  int status = RUN_ALL_TESTS();
  const auto& run = *::testing::UnitTest::GetInstance();
  if (status == 0 && run.test_to_run_count() > 0 && run.skipped_test_count() == run.test_to_run_count())
    return 77;
  return status;
}
