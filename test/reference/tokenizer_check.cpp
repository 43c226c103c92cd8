// Checks the Gemma-4 tokenizer against Hugging Face reference tokenizations.
//
//   tokenizer_check VOCAB.gguf INP OUT
//     INP/OUT: llama.cpp's ggml-vocab-gemma-4.gguf.inp / .out (cases in INP separated
//     by "\n__ggml_vocab_test__\n"; one line of space-separated ids per case in OUT,
//     made without BOS). Also checks the test vectors of design/gemma4.md §6 and
//     decode(encode(s)) == s. Prints "tokenizer_check: N passed, M failed".
//
//   tokenizer_check VOCAB.gguf --jsonl IN OUT [--no-bos] [--no-special]
//     IN: one JSON string per line (blank lines skipped). OUT: one JSON array of
//     ids per line (encode with BOS and parse_special unless turned off; the same
//     flags as llama_ref tokenize).
//
//   tokenizer_check VOCAB.gguf --bench FILE
//     Load time and encode speed over FILE's text.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "models/gemma4/tokenizer.h"

namespace {

using Ids = std::vector<int32_t>;

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string ids_str(const Ids& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(ids[i]);
  }
  return s;
}

// Printable form of a test string.
std::string show(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '\n') o += "\\n";
    else if (c == '\t') o += "\\t";
    else if (c == '"') o += "\\\"";
    else if (c == '\\') o += "\\\\";
    else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      o += b;
    } else o += static_cast<char>(c);
  }
  return o + "\"";
}

struct Checker {
  const nla::gemma4::Tokenizer& tok;
  int passed = 0, failed = 0;

  void fail(const std::string& what) {
    ++failed;
    std::printf("FAIL %s\n", what.c_str());
  }

  void expect_ids(const std::string& label, const std::string& text, const Ids& want) {
    const Ids got = tok.encode(text, /*add_bos=*/false, /*parse_special=*/true);
    if (got == want) {
      ++passed;
      return;
    }
    size_t k = 0;
    while (k < got.size() && k < want.size() && got[k] == want[k]) ++k;
    std::string pieces;
    for (size_t i = k; i < got.size() && i < k + 8; ++i) pieces += " " + show(tok.token_text(got[i]));
    fail(label + " " + show(text) + "\n  want: " + ids_str(want) + "\n  got:  " + ids_str(got) +
         "\n  first difference at index " + std::to_string(k) + "; got pieces from there:" + pieces);
  }

  void expect_roundtrip(const std::string& label, const std::string& text) {
    const std::string back = tok.decode(tok.encode(text, false, true), /*render_special=*/true);
    if (back == text) {
      ++passed;
      return;
    }
    fail(label + " decode(encode(s)) != s\n  s:    " + show(text) + "\n  back: " + show(back));
  }
};

Ids parse_ids(const std::string& line) {
  Ids ids;
  std::istringstream ss(line);
  long v;
  while (ss >> v) ids.push_back(static_cast<int32_t>(v));
  return ids;
}

// --- minimal JSON string reading/writing for --jsonl -----------------------

void put_utf8(std::string& o, uint32_t cp) {
  if (cp < 0x80) o += static_cast<char>(cp);
  else if (cp < 0x800) {
    o += static_cast<char>(0xC0 | (cp >> 6));
    o += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    o += static_cast<char>(0xE0 | (cp >> 12));
    o += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    o += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    o += static_cast<char>(0xF0 | (cp >> 18));
    o += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    o += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    o += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool parse_json_string(const std::string& line, std::string& out) {
  size_t i = line.find('"');
  if (i == std::string::npos) return false;
  out.clear();
  auto hex4 = [&](size_t at, uint32_t& v) {
    if (at + 4 > line.size()) return false;
    v = 0;
    for (size_t k = at; k < at + 4; ++k) {
      const char c = line[k];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else return false;
    }
    return true;
  };
  for (++i; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '"') return true;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i >= line.size()) return false;
    switch (line[i]) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        uint32_t cp;
        if (!hex4(i + 1, cp)) return false;
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && line.compare(i + 1, 2, "\\u") == 0) {
          uint32_t lo;
          if (hex4(i + 3, lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
          }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // lone surrogate, as Node's Buffer.from does
        put_utf8(out, cp);
        break;
      }
      default: return false;
    }
  }
  return false;
}

int run_jsonl(const nla::gemma4::Tokenizer& tok, const std::string& in_path, const std::string& out_path, bool add_bos,
              bool parse_special) {
  std::ifstream in(in_path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot open %s\n", in_path.c_str());
    return 2;
  }
  std::ofstream out(out_path, std::ios::binary);
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", out_path.c_str());
    return 2;
  }
  std::string line, text;
  size_t n = 0;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (!parse_json_string(line, text)) {
      std::fprintf(stderr, "%s:%zu: not a JSON string\n", in_path.c_str(), n + 1);
      return 2;
    }
    const Ids ids = tok.encode(text, add_bos, parse_special);
    out << '[';
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) out << ',';
      out << ids[i];
    }
    out << "]\n";
    ++n;
  }
  std::fprintf(stderr, "tokenizer_check: wrote %zu lines to %s\n", n, out_path.c_str());
  return 0;
}

int run_bench(const nla::gemma4::Tokenizer& tok, const std::string& path) {
  const std::string text = read_all(path);
  size_t n_tokens = 0;
  const auto t0 = std::chrono::steady_clock::now();
  int reps = 0;
  double secs = 0;
  do {
    n_tokens += tok.encode(text, true, true).size();
    ++reps;
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (secs < 1.0);
  std::printf("encode: %zu bytes x %d reps, %.0f tokens/s, %.1f MB/s\n", text.size(), reps, n_tokens / secs,
              text.size() * reps / secs / 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: %s VOCAB.gguf INP OUT\n"
                 "       %s VOCAB.gguf --jsonl IN OUT [--no-bos] [--no-special]\n"
                 "       %s VOCAB.gguf --bench FILE\n",
                 argv[0], argv[0], argv[0]);
    return 2;
  }
  try {
    const auto t0 = std::chrono::steady_clock::now();
    auto file = nla::GgufFile::open(argv[1]);
    const auto t1 = std::chrono::steady_clock::now();
    auto tok = nla::gemma4::Tokenizer::from_gguf(*file);
    const auto t2 = std::chrono::steady_clock::now();
    const double gguf_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    const double tok_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();

    const std::string mode = argv[2];
    if (mode == "--jsonl") {
      bool add_bos = true, parse_special = true;
      for (int k = 5; k < argc; ++k) {
        const std::string f = argv[k];
        if (f == "--no-bos") add_bos = false;
        else if (f == "--no-special") parse_special = false;
        else {
          std::fprintf(stderr, "unknown flag %s\n", f.c_str());
          return 2;
        }
      }
      if (argc < 5) {
        std::fprintf(stderr, "--jsonl needs IN and OUT\n");
        return 2;
      }
      return run_jsonl(*tok, argv[3], argv[4], add_bos, parse_special);
    }
    if (mode == "--bench") {
      if (argc != 4) {
        std::fprintf(stderr, "--bench needs FILE\n");
        return 2;
      }
      std::printf("load: gguf open %.1f ms, tokenizer build %.1f ms (%d tokens)\n", gguf_ms, tok_ms, tok->n_vocab());
      return run_bench(*tok, argv[3]);
    }
    if (argc != 4) {
      std::fprintf(stderr, "expected VOCAB.gguf INP OUT\n");
      return 2;
    }
    std::printf("load: gguf open %.1f ms, tokenizer build %.1f ms (%d tokens)\n", gguf_ms, tok_ms, tok->n_vocab());

    Checker c{*tok};

    // 1. The HF reference cases.
    const std::string raw = read_all(argv[2]);
    std::vector<std::string> inputs;
    const std::string sep = "\n__ggml_vocab_test__\n";
    for (size_t pos = 0; pos < raw.size();) {
      const size_t next = raw.find(sep, pos);
      if (next == std::string::npos) {
        inputs.push_back(raw.substr(pos));
        break;
      }
      inputs.push_back(raw.substr(pos, next - pos));
      pos = next + sep.size();
    }
    std::vector<std::string> outputs;
    {
      std::istringstream ss(read_all(argv[3]));
      for (std::string line; std::getline(ss, line);) outputs.push_back(line);
    }
    if (inputs.size() != outputs.size() || inputs.empty()) {
      c.fail("reference files: " + std::to_string(inputs.size()) + " inputs vs " + std::to_string(outputs.size()) +
             " outputs");
    } else {
      for (size_t i = 0; i < inputs.size(); ++i) {
        c.expect_ids("ref#" + std::to_string(i), inputs[i], parse_ids(outputs[i]));
        c.expect_roundtrip("ref#" + std::to_string(i), inputs[i]);
      }
    }

    // 2. The test vectors of design/gemma4.md §6 (HF, no BOS).
    struct Vec {
      std::string text;
      Ids ids;
    };
    const std::vector<Vec> vecs = {
        {"Hello world", {9259, 1902}},
        {" Hello world", {26352, 1902}},
        {" ", {236743}},
        {"  ", {138}},
        {"  Hello", {138, 9259}},
        {"\n", {107}},
        {"\n\n", {108}},
        {"\t\n", {255968, 107}},
        {"    Hello\n    Hello", {140, 9259, 107, 140, 9259}},
        {"333", {236800, 236800, 236800}},
        {"w048 7tuijk dsdfhu", {236765, 236771, 236812, 236828, 236743, 236832, 11372, 12065, 31806, 3405, 9360}},
        {" this is \xF0\x9F\xA6\x99.cpp", {672, 563, 236743, 478, 397, 404, 391, 236761, 12362}},
        {"C\xE1\xBB\xAD" "a Vi\xE1\xBB\x87t", {236780, 29719, 33154}},
        {std::string(40, '\n'), {137, 115}},
        // Special tokens (ids from the class lists in §6).
        {"<bos>", {2}},
        {"<|turn>", {105}},
        {"<turn|>", {106}},
        {"<|\"|>", {52}},
        {"<|tool_call>", {48}},
        {"<|channel>", {100}},
        {"<|image|>", {258880}},
        {"<image|>", {258882}},
    };
    for (size_t i = 0; i < vecs.size(); ++i) {
      c.expect_ids("vec#" + std::to_string(i), vecs[i].text, vecs[i].ids);
      c.expect_roundtrip("vec#" + std::to_string(i), vecs[i].text);
    }

    // 3. Behaviour that is not a HF vector but is specified.
    {
      // CONTROL tokens are text when parse_special is off; USER_DEFINED are always matched.
      const Ids a = tok->encode("<bos>", false, false);
      if (a.size() > 1 && a[0] != 2) ++c.passed;
      else c.fail("parse_special=false should not match <bos>: got " + ids_str(a));
      const Ids b = tok->encode("<|tool_call>", false, false);
      if (b == Ids{48}) ++c.passed;
      else c.fail("USER_DEFINED <|tool_call> should match with parse_special=false: got " + ids_str(b));
      // BOS once, never EOS.
      const Ids d = tok->encode("Hello world", true, true);
      if (d == Ids{2, 9259, 1902}) ++c.passed;
      else c.fail("add_bos: got " + ids_str(d));
      if (tok->encode("", true, true) == Ids{2} && tok->encode("", false, true).empty()) ++c.passed;
      else c.fail("empty input");
      // Decoding: CONTROL hidden unless rendered, USER_DEFINED literal, bytes re-assembled.
      const std::string s1 = tok->decode({2, 9259, 52, 1902, 106}, false);
      if (s1 == "Hello<|\"|> world") ++c.passed;
      else c.fail("decode without specials: " + show(s1));
      const std::string s2 = tok->decode({2, 9259}, true);
      if (s2 == "<bos>Hello") ++c.passed;
      else c.fail("decode with specials: " + show(s2));
      // Invalid UTF-8 must not crash and must round-trip through byte tokens.
      const std::string bad = std::string("a\xFF") + "b\xC3" + " \xE2\x82" + "\xF0\x9F\xA6" + "\xED\xA0\x80" + "\xC0\xAF";
      const Ids e = tok->encode(bad, false, true);
      if (tok->decode(e) == bad) ++c.passed;
      else c.fail("invalid UTF-8 round trip: " + show(tok->decode(e)) + " ids " + ids_str(e));
      bool threw = false;
      try {
        tok->decode({tok->n_vocab()});
      } catch (const nla::Error& err) {
        threw = err.code == nla::code::INVALID_ARG;
      }
      if (threw) ++c.passed;
      else c.fail("decode of an out-of-range id should throw INVALID_ARG");
    }

    std::printf("tokenizer_check: %d passed, %d failed\n", c.passed, c.failed);
    return c.failed == 0 ? 0 : 1;
  } catch (const nla::Error& e) {
    std::fprintf(stderr, "tokenizer_check: error %s: %s\n", e.code.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer_check: error: %s\n", e.what());
    return 2;
  }
}
