// Answers match queries with the PEFT pattern matcher, for the differential test against Python's `re`
// (test/peft-regex.test.ts). stdin: one JSON object per line {"m": "full" | "key", "p": pattern, "t": text};
// stdout: one line each: 1 (match), 0 (no match) or E (refused: nla::Error).
#include <iostream>
#include <string>

#include "adapters/peft_regex.h"
#include "common/error.h"
#include "common/json.h"

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    const nla::Json q = nla::Json::parse(line);
    const std::string& p = q.at("p").as_string();
    const std::string& t = q.at("t").as_string();
    try {
      const nla::PeftRegex re = q.at("m").as_string() == "key" ? nla::PeftRegex::compile_pattern_key(p, "probe")
                                                               : nla::PeftRegex::compile(p, "probe");
      std::cout << (re.matches(t) ? "1" : "0") << '\n';
    } catch (const nla::Error&) {
      std::cout << "E\n";
    }
  }
  return 0;
}
