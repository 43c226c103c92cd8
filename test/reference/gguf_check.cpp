// Malformed-GGUF check for native/gguf.cc (no ggml needed).
//
// A tiny writer below builds a valid GGUF; each case breaks one field (or
// truncates / fuzzes the file) and the reader must throw nla::Error with the
// expected code and a message naming the field. Run it under
// -fsanitize=address,undefined to show that no case reads out of bounds.
//
// Prints one JSON line per check and `gguf_check: N passed, M failed`.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "formats/gguf.h"

namespace {

int g_pass = 0, g_fail = 0;

std::string json_escape(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') { o += '\\'; o += static_cast<char>(c); }
    else if (c < 0x20) { char b[8]; std::snprintf(b, sizeof b, "\\u%04x", c); o += b; }
    else o += static_cast<char>(c);
  }
  return o;
}

void report(bool ok, const std::string& name, const std::string& detail) {
  (ok ? g_pass : g_fail)++;
  std::printf("{\"ok\":%s,\"check\":\"%s\",\"detail\":\"%s\"}\n", ok ? "true" : "false", json_escape(name).c_str(),
              json_escape(detail).c_str());
  std::fflush(stdout);
}

// ---------------------------------------------------------------- a tiny GGUF writer

struct Writer {
  std::vector<uint8_t> b;
  std::map<std::string, size_t> at;  // positions of fields the cases patch
  void raw(const void* p, size_t n) { b.insert(b.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n); }
  template <typename T> void put(T v) { raw(&v, sizeof v); }
  void str(const std::string& s) { put<uint64_t>(s.size()); raw(s.data(), s.size()); }
  void mark(const std::string& name) { at[name] = b.size(); }
  void pad_to(size_t align) { while (b.size() % align) b.push_back(0); }
};

template <typename T> void patch(std::vector<uint8_t>& b, size_t pos, T v) { std::memcpy(b.data() + pos, &v, sizeof v); }

struct TensorSpec {
  std::string name;
  std::vector<int64_t> ne;
  uint32_t type;
  size_t nbytes;
};

struct Spec {
  uint32_t version = 3;
  uint32_t alignment = 64;
  bool write_alignment = true;
  std::vector<TensorSpec> tensors = {
      {"token_embd.weight", {64, 3}, 8 /* q8_0 */, 3 * 2 * 34},
      {"blk.0.attn_q.weight", {256, 2}, 12 /* q4_K */, 2 * 144},
      {"output_norm.weight", {5}, 0 /* f32 */, 20},
  };
};

// Builds a valid file; the marks name where each field sits.
Writer build(const Spec& sp) {
  Writer w;
  w.mark("magic");
  w.raw("GGUF", 4);
  w.mark("version");
  w.put<uint32_t>(sp.version);
  w.mark("n_tensors");
  w.put<int64_t>(static_cast<int64_t>(sp.tensors.size()));
  w.mark("n_kv");
  const int64_t n_kv = 12 + (sp.write_alignment ? 1 : 0);
  w.put<int64_t>(n_kv);

  w.mark("kv.arch.keylen");
  w.str("general.architecture");
  w.mark("kv.arch.type");
  w.put<uint32_t>(8);
  w.str("gemma4");

  w.str("gemma4.block_count");
  w.put<uint32_t>(4);
  w.put<uint32_t>(35);

  if (sp.write_alignment) {
    w.str("general.alignment");
    w.mark("kv.align.type");
    w.put<uint32_t>(4);
    w.mark("kv.align.value");
    w.put<uint32_t>(sp.alignment);
  }

  w.str("gemma4.rope.freq_base");
  w.put<uint32_t>(6);
  w.put<float>(1e6f);

  w.str("tokenizer.ggml.add_bos_token");
  w.put<uint32_t>(7);
  w.put<uint8_t>(1);

  w.str("test.i8");
  w.put<uint32_t>(1);
  w.put<int8_t>(-7);

  w.str("test.f64");
  w.put<uint32_t>(12);
  w.put<double>(-2.5);

  w.mark("kv.tokens.key");
  w.str("tokenizer.ggml.tokens");
  w.put<uint32_t>(9);
  w.mark("kv.tokens.elemtype");
  w.put<uint32_t>(8);
  w.mark("kv.tokens.count");
  w.put<uint64_t>(3);
  w.str("<pad>");
  w.mark("kv.tokens.str1len");
  w.str("<eos>");
  w.str("a b");

  w.str("gemma4.attention.sliding_window_pattern");
  w.put<uint32_t>(9);
  w.put<uint32_t>(7);
  w.put<uint64_t>(4);
  for (uint8_t v : {1, 1, 0, 1}) w.put<uint8_t>(v);

  w.str("tokenizer.ggml.scores");
  w.put<uint32_t>(9);
  w.put<uint32_t>(6);
  w.mark("kv.scores.count");
  w.put<uint64_t>(3);
  for (float v : {-1000.0f, 0.5f, 2.0f}) w.put<float>(v);

  w.str("test.u64arr");
  w.put<uint32_t>(9);
  w.put<uint32_t>(10);
  w.put<uint64_t>(2);
  w.put<uint64_t>(7);
  w.mark("kv.u64arr.second");
  w.put<uint64_t>(9);

  // An array of arrays: [[1,2],["x"]] — parsed and skipped.
  w.str("test.nested");
  w.put<uint32_t>(9);
  w.mark("kv.nested.elemtype");
  w.put<uint32_t>(9);
  w.mark("kv.nested.count");
  w.put<uint64_t>(2);
  w.put<uint32_t>(5);
  w.mark("kv.nested.inner0.count");
  w.put<uint64_t>(2);
  w.put<int32_t>(1);
  w.put<int32_t>(2);
  w.put<uint32_t>(8);
  w.put<uint64_t>(1);
  w.str("x");

  w.mark("kv.last.key");
  w.str("gemma4.block_count");  // repeated key: last value wins
  w.put<uint32_t>(4);
  w.put<uint32_t>(36);

  const uint64_t align = sp.write_alignment ? sp.alignment : 32;
  uint64_t off = 0;
  for (size_t i = 0; i < sp.tensors.size(); ++i) {
    const TensorSpec& t = sp.tensors[i];
    const std::string p = "t" + std::to_string(i) + ".";
    w.mark(p + "name");
    w.str(t.name);
    w.mark(p + "n_dims");
    w.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (size_t d = 0; d < t.ne.size(); ++d) {
      w.mark(p + "ne" + std::to_string(d));
      w.put<int64_t>(t.ne[d]);
    }
    w.mark(p + "type");
    w.put<uint32_t>(t.type);
    w.mark(p + "offset");
    w.put<uint64_t>(off);
    off += (t.nbytes + align - 1) / align * align;
  }
  w.pad_to(static_cast<size_t>(align));
  w.mark("data");
  for (size_t i = 0; i < sp.tensors.size(); ++i) {
    for (size_t k = 0; k < sp.tensors[i].nbytes; ++k) w.b.push_back(static_cast<uint8_t>(i * 31 + k));
    if (i + 1 < sp.tensors.size()) w.pad_to(static_cast<size_t>(align));  // no padding after the last tensor
  }
  return w;
}

std::string g_path;

void write_file(const std::vector<uint8_t>& b) {
  FILE* f = std::fopen(g_path.c_str(), "wb");
  if (!f) { std::perror("fopen"); std::exit(2); }
  if (!b.empty()) std::fwrite(b.data(), 1, b.size(), f);
  std::fclose(f);
}

struct Outcome {
  bool threw = false;
  std::string code, message;
};

Outcome try_open(const std::vector<uint8_t>& b) {
  write_file(b);
  Outcome o;
  try {
    auto f = nla::GgufFile::open(g_path);
  } catch (const nla::Error& e) {
    o.threw = true;
    o.code = e.code;
    o.message = e.what();
  }
  return o;
}

// The bytes must be rejected as malformed with `needle` in the message.
void expect_malformed(const std::string& name, const std::vector<uint8_t>& b, const std::string& needle,
                      const char* code = nla::code::GGUF_MALFORMED) {
  const Outcome o = try_open(b);
  const bool ok = o.threw && o.code == code && o.message.find(needle) != std::string::npos &&
                  o.message.find(g_path) != std::string::npos;
  report(ok, name, o.threw ? o.code + ": " + o.message : "opened without error (expected '" + needle + "')");
}

// ---------------------------------------------------------------- cases

void check_valid() {
  const Writer w = build(Spec());
  write_file(w.b);
  std::string why;
  try {
    auto f = nla::GgufFile::open(g_path);
    auto expect = [&](bool c, const char* what) { if (!c && why.empty()) why = what; };
    expect(f->version() == 3, "version");
    expect(f->alignment() == 64, "alignment");
    expect(f->get_string("general.architecture") == "gemma4", "architecture");
    expect(f->get_uint("gemma4.block_count") == 36, "repeated key: last wins");
    expect(f->get_float("gemma4.rope.freq_base") == 1e6, "freq_base");
    expect(f->get_bool("tokenizer.ggml.add_bos_token"), "add_bos");
    expect(f->get_int("test.i8") == -7, "i8");
    expect(f->get_float("test.f64") == -2.5, "f64");
    expect(f->get_string_array("tokenizer.ggml.tokens") == std::vector<std::string>({"<pad>", "<eos>", "a b"}), "tokens");
    expect(f->get_int_array("gemma4.attention.sliding_window_pattern") == std::vector<int64_t>({1, 1, 0, 1}), "swa");
    expect(f->get_float_array("tokenizer.ggml.scores") == std::vector<double>({-1000.0, 0.5, 2.0}), "scores");
    expect(f->get_int_array("test.u64arr") == std::vector<int64_t>({7, 9}), "u64 array");
    const nla::GgufValue* nested = f->find("test.nested");
    expect(nested && nested->count == 2 && nested->ints.empty() && nested->strings.empty(), "nested array skipped");
    expect(f->tensors().size() == 3, "tensor count");
    const nla::TensorInfo* t = f->tensor("blk.0.attn_q.weight");
    expect(t && t->nbytes == 288 && t->ne[0] == 256 && t->ne[1] == 2 && t->n_dims == 2 && t->nrows() == 2, "q4_K info");
    expect(t && t->data[0] == 31 && t->data[287] == static_cast<uint8_t>(31 + 287) && t->offset == 256, "q4_K data");
    const nla::TensorInfo* n = f->tensor("output_norm.weight");
    expect(n && n->nbytes == 20 && n->data[0] == static_cast<uint8_t>(2 * 31) && n->offset % 64 == 0, "f32 tensor data");
    expect(f->tensor("nope") == nullptr, "absent tensor");
    // Getter errors name the key.
    try { f->get_uint("general.architecture"); expect(false, "type mismatch not reported"); }
    catch (const nla::Error& e) { expect(e.code == nla::code::MODEL_INVALID && std::strstr(e.what(), "general.architecture"), "getter msg"); }
    try { f->get_string("missing.key"); expect(false, "missing key not reported"); }
    catch (const nla::Error& e) { expect(std::strstr(e.what(), "missing.key") != nullptr, "missing msg"); }
  } catch (const nla::Error& e) {
    why = std::string("threw: ") + e.what();
  }
  report(why.empty(), "valid_file", why.empty() ? "opened; all values as written" : why);

  // Version 2 opens too.
  Spec s2;
  s2.version = 2;
  const Outcome o = try_open(build(s2).b);
  report(!o.threw, "valid_v2", o.threw ? o.message : "opened");
  // Default alignment (no general.alignment key).
  Spec s3;
  s3.write_alignment = false;
  const Outcome o3 = try_open(build(s3).b);
  report(!o3.threw, "valid_default_alignment", o3.threw ? o3.message : "opened");
  // A known but unsupported tensor type (q2_K) still opens.
  Spec s4;
  s4.tensors[1].type = 10;
  s4.tensors[1].nbytes = 2 * 84;
  const Outcome o4 = try_open(build(s4).b);
  report(!o4.threw, "valid_unsupported_type_q2_K", o4.threw ? o4.message : "opened");
}

void check_truncations() {
  const Writer w = build(Spec());
  int bad = 0;
  std::string first;
  for (size_t len = 0; len < w.b.size(); ++len) {
    std::vector<uint8_t> t(w.b.begin(), w.b.begin() + static_cast<long>(len));
    const Outcome o = try_open(t);
    if (!o.threw || o.code != nla::code::GGUF_MALFORMED || o.message.find(g_path) == std::string::npos) {
      if (first.empty()) first = "length " + std::to_string(len) + ": " + (o.threw ? o.message : "opened");
      ++bad;
    }
  }
  report(bad == 0, "truncations",
         "every length 0.." + std::to_string(w.b.size() - 1) + " rejected" + (bad ? "; failures " + std::to_string(bad) + ", first " + first : ""));
}

void check_cases() {
  const Spec spec;
  const Writer w = build(spec);
  auto mutated = [&](const std::function<void(std::vector<uint8_t>&)>& f) {
    std::vector<uint8_t> b = w.b;
    f(b);
    return b;
  };
  expect_malformed("wrong_magic", mutated([](std::vector<uint8_t>& b) { std::memcpy(b.data(), "GGML", 4); }), "not a GGUF file");
  expect_malformed("version_1", mutated([&](std::vector<uint8_t>& b) { patch<uint32_t>(b, w.at.at("version"), 1); }), "version 1");
  expect_malformed("version_4", mutated([&](std::vector<uint8_t>& b) { patch<uint32_t>(b, w.at.at("version"), 4); }), "version 4");
  expect_malformed("version_byteswapped", mutated([&](std::vector<uint8_t>& b) { patch<uint32_t>(b, w.at.at("version"), 0x03000000); }),
                   "big-endian");
  expect_malformed("huge_tensor_count", mutated([&](std::vector<uint8_t>& b) { patch<int64_t>(b, w.at.at("n_tensors"), INT64_MAX); }),
                   "tensor count");
  expect_malformed("negative_kv_count", mutated([&](std::vector<uint8_t>& b) { patch<int64_t>(b, w.at.at("n_kv"), -1); }),
                   "metadata count");
  expect_malformed("huge_key_length", mutated([&](std::vector<uint8_t>& b) { patch<uint64_t>(b, w.at.at("kv.arch.keylen"), 1ull << 62); }),
                   "metadata key #0 length");
  expect_malformed("huge_string_length_in_array",
                   mutated([&](std::vector<uint8_t>& b) { patch<uint64_t>(b, w.at.at("kv.tokens.str1len"), ~0ull); }),
                   "'tokenizer.ggml.tokens'[1] length");
  expect_malformed("huge_array_count_strings",
                   mutated([&](std::vector<uint8_t>& b) { patch<uint64_t>(b, w.at.at("kv.tokens.count"), 1ull << 61); }),
                   "'tokenizer.ggml.tokens' count");
  expect_malformed("huge_array_count_f32",
                   mutated([&](std::vector<uint8_t>& b) { patch<uint64_t>(b, w.at.at("kv.scores.count"), 0x4000000000000001ull); }),
                   "'tokenizer.ggml.scores' count");
  expect_malformed("huge_nested_array_count",
                   mutated([&](std::vector<uint8_t>& b) { patch<uint64_t>(b, w.at.at("kv.nested.inner0.count"), 1ull << 40); }),
                   "'test.nested'[0] count");
  expect_malformed("unknown_value_type", mutated([&](std::vector<uint8_t>& b) { patch<uint32_t>(b, w.at.at("kv.arch.type"), 13); }),
                   "'general.architecture' has unknown value type 13");
  expect_malformed("unknown_array_elem_type",
                   mutated([&](std::vector<uint8_t>& b) { patch<uint32_t>(b, w.at.at("kv.tokens.elemtype"), 77); }),
                   "unknown array element type 77");
  expect_malformed("u64_array_value_too_large",
                   mutated([&](std::vector<uint8_t>& b) { patch<uint64_t>(b, w.at.at("kv.u64arr.second"), 1ull << 63); }),
                   "'test.u64arr'[1]");
  expect_malformed("bad_alignment_48", build([] { Spec s; s.alignment = 48; return s; }()).b, "general.alignment");
  expect_malformed("bad_alignment_0", mutated([&](std::vector<uint8_t>& b) { patch<uint32_t>(b, w.at.at("kv.align.value"), 0); }),
                   "general.alignment");
  expect_malformed("alignment_wrong_type", mutated([&](std::vector<uint8_t>& b) { patch<uint32_t>(b, w.at.at("kv.align.type"), 5); }),
                   "general.alignment");
  expect_malformed("n_dims_5", mutated([&](std::vector<uint8_t>& b) { patch<uint32_t>(b, w.at.at("t1.n_dims"), 5); }),
                   "tensor 'blk.0.attn_q.weight' n_dims 5");
  expect_malformed("ne_zero", mutated([&](std::vector<uint8_t>& b) { patch<int64_t>(b, w.at.at("t0.ne1"), 0); }),
                   "tensor 'token_embd.weight' ne[1]");
  expect_malformed("ne_negative", mutated([&](std::vector<uint8_t>& b) { patch<int64_t>(b, w.at.at("t0.ne0"), -64); }),
                   "tensor 'token_embd.weight' ne[0]");
  expect_malformed("element_count_overflow",
                   mutated([&](std::vector<uint8_t>& b) {
                     patch<int64_t>(b, w.at.at("t0.ne0"), 1ll << 40);
                     patch<int64_t>(b, w.at.at("t0.ne1"), 1ll << 30);
                   }),
                   "tensor 'token_embd.weight' element count overflows");
  expect_malformed("byte_size_past_eof",
                   mutated([&](std::vector<uint8_t>& b) {
                     patch<int64_t>(b, w.at.at("t0.ne0"), 1ll << 40);
                     patch<int64_t>(b, w.at.at("t0.ne1"), 1ll << 20);
                   }),
                   "tensor 'token_embd.weight' data");
  expect_malformed("ne0_not_block_multiple", mutated([&](std::vector<uint8_t>& b) { patch<int64_t>(b, w.at.at("t0.ne0"), 48); }),
                   "not a multiple of the block size 32");
  expect_malformed("unknown_type_id_4", mutated([&](std::vector<uint8_t>& b) { patch<uint32_t>(b, w.at.at("t2.type"), 4); }),
                   "tensor 'output_norm.weight' has unknown tensor type id 4");
  expect_malformed("unknown_type_id_999", mutated([&](std::vector<uint8_t>& b) { patch<uint32_t>(b, w.at.at("t2.type"), 999); }),
                   "unknown tensor type id 999");
  expect_malformed("tensor_offset_past_eof",
                   mutated([&](std::vector<uint8_t>& b) { patch<uint64_t>(b, w.at.at("t2.offset"), 64 * 1000); }),
                   "tensor 'output_norm.weight' data [");
  expect_malformed("tensor_offset_overflow",
                   mutated([&](std::vector<uint8_t>& b) { patch<uint64_t>(b, w.at.at("t2.offset"), ~0ull - 63); }),
                   "tensor 'output_norm.weight' data offset");
  expect_malformed("tensor_offset_misaligned",
                   mutated([&](std::vector<uint8_t>& b) { patch<uint64_t>(b, w.at.at("t1.offset"), 256 + 8); }),
                   "tensor 'blk.0.attn_q.weight' data offset 264 is not a multiple of the alignment 64");
  {
    // Duplicate tensor name: rename tensor 2 to tensor 0's name (same length needed: build it).
    Spec s;
    s.tensors[2].name = "token_embd.weight";
    expect_malformed("duplicate_tensor_name", build(s).b, "duplicate tensor name 'token_embd.weight'");
  }
  {
    // Array nesting beyond the limit: a chain of 40 arrays each holding one array.
    Writer n;
    n.raw("GGUF", 4);
    n.put<uint32_t>(3);
    n.put<int64_t>(0);
    n.put<int64_t>(1);
    n.str("deep");
    n.put<uint32_t>(9);
    for (int i = 0; i < 40; ++i) {
      n.put<uint32_t>(9);
      n.put<uint64_t>(1);
    }
    n.put<uint32_t>(4);
    n.put<uint64_t>(0);
    for (int i = 0; i < 64; ++i) n.put<uint8_t>(0);
    expect_malformed("array_nesting_too_deep", n.b, "nests arrays deeper");
  }
  {
    Writer n;  // empty key
    n.raw("GGUF", 4);
    n.put<uint32_t>(3);
    n.put<int64_t>(0);
    n.put<int64_t>(1);
    n.str("");
    n.put<uint32_t>(4);
    n.put<uint32_t>(1);
    expect_malformed("empty_key", n.b, "metadata key #0 is empty");
  }
  expect_malformed("empty_file", {}, "truncated header");
  {
    // A directory and a missing file are IO errors.
    const std::string saved = g_path;
    Outcome o;
    try { nla::GgufFile::open("/nonexistent/dir/model.gguf"); } catch (const nla::Error& e) { o.threw = true; o.code = e.code; o.message = e.what(); }
    report(o.threw && o.code == nla::code::IO && o.message.find("/nonexistent/dir/model.gguf") != std::string::npos, "missing_file_io",
           o.code + ": " + o.message);
    Outcome d;
    try { nla::GgufFile::open("/tmp"); } catch (const nla::Error& e) { d.threw = true; d.code = e.code; d.message = e.what(); }
    report(d.threw && d.code == nla::code::IO, "directory_io", d.code + ": " + d.message);
    g_path = saved;
  }
}

// Random corruption of the header and directory: must open or throw nla::Error, never crash.
void check_fuzz(int iterations) {
  const Writer w = build(Spec());
  const size_t header_end = w.at.at("data");
  std::mt19937 rng(12345);
  int opened = 0, rejected = 0, other = 0;
  for (int it = 0; it < iterations; ++it) {
    std::vector<uint8_t> b = w.b;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      const size_t pos = rng() % header_end;
      switch (rng() % 3) {
        case 0: b[pos] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        case 1: b[pos] = static_cast<uint8_t>(rng()); break;
        default: b[pos] = 0xFF; break;
      }
    }
    if (rng() % 8 == 0) b.resize(rng() % b.size());
    write_file(b);
    try {
      auto f = nla::GgufFile::open(g_path);
      // Touch everything the reader exposes to let the sanitizers see it.
      size_t sum = 0;
      for (const auto& t : f->tensors()) for (size_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
      for (const auto& kv : f->metadata()) sum += kv.second.s.size() + kv.second.strings.size();
      (void)sum;
      ++opened;
    } catch (const nla::Error& e) {
      if (e.code == nla::code::GGUF_MALFORMED || e.code == nla::code::IO) ++rejected; else ++other;
    } catch (...) {
      ++other;
    }
  }
  report(other == 0, "fuzz_header_corruption",
         std::to_string(iterations) + " corrupted files: " + std::to_string(opened) + " opened, " + std::to_string(rejected) +
             " rejected with nla::Error, " + std::to_string(other) + " other exceptions");
}

}  // namespace

int main(int argc, char** argv) {
  const int fuzz = argc > 1 ? std::atoi(argv[1]) : 20000;
  g_path = "/tmp/gguf_check_" + std::to_string(getpid()) + ".gguf";
  check_valid();
  check_truncations();
  check_cases();
  check_fuzz(fuzz);
  std::remove(g_path.c_str());
  std::printf("gguf_check: %d passed, %d failed\n", g_pass, g_fail);
  return g_fail == 0 ? 0 : 1;
}
