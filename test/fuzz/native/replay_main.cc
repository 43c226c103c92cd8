// Replays inputs through one harness without libFuzzer: each argument is a file or a directory of files.
// Exits non-zero (or crashes, or is killed by the caller's timeout) if one of them is a finding.
#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));

static int replay(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "replay: cannot read %s\n", path.c_str());
    return 1;
  }
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::printf("replay: %s (%zu bytes)\n", path.c_str(), bytes.size());
  std::fflush(stdout);
  try {
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "replay: FINDING in %s: uncaught %s\n", path.c_str(), e.what());
    return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  int failed = 0, n = 0;
  for (int i = 1; i < argc; ++i) {
    struct stat st;
    if (stat(argv[i], &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      std::vector<std::string> names;
      if (DIR* d = opendir(argv[i])) {
        while (dirent* e = readdir(d))
          if (e->d_name[0] != '.') names.push_back(std::string(argv[i]) + "/" + e->d_name);
        closedir(d);
      }
      for (const auto& p : names) failed += replay(p), ++n;
    } else {
      failed += replay(argv[i]), ++n;
    }
  }
  std::printf("replay: %d inputs, %d findings\n", n, failed);
  return failed ? 1 : 0;
}
