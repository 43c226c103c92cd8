// Check program for the PEFT adapter loader, the safetensors reader and the JSON
// parser. Writes adapters into a temp dir with its own tiny writer and checks
// correct loads and that each malformed case fails with its own code/message.
//
//   g++ -O2 -std=c++17 -Inative test/reference/lora_check.cpp native/lora.cc native/json.cc
//       native/safetensors.cc -o /tmp/lora_check && /tmp/lora_check
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/json.h"
#include "adapters/lora.h"
#include "formats/safetensors.h"

using namespace nla;

namespace {

int g_pass = 0, g_fail = 0;
std::string g_root;

void check(bool ok, const std::string& what, const std::string& detail = "") {
  if (ok) {
    ++g_pass;
  } else {
    ++g_fail;
    std::printf("FAIL: %s%s%s\n", what.c_str(), detail.empty() ? "" : ": ", detail.c_str());
  }
}

bool near(double a, double b, double tol = 1e-6) { return std::fabs(a - b) <= tol * (1 + std::fabs(b)); }

// Runs f, expecting nla::Error with `code` and a message containing every needle.
void expect_error(const std::string& what, const char* code, std::vector<std::string> needles,
                  const std::function<void()>& f) {
  try {
    f();
    check(false, what, "no error thrown");
  } catch (const Error& e) {
    std::string msg = e.what();
    bool ok = e.code == code;
    std::string missing;
    for (const auto& n : needles)
      if (msg.find(n) == std::string::npos) {
        ok = false;
        missing += " [missing \"" + n + "\"]";
      }
    check(ok, what, ok ? "" : "got " + e.code + ": " + msg + missing);
  } catch (const std::exception& e) {
    check(false, what, std::string("unexpected exception type: ") + e.what());
  }
}

void expect_json_error(const std::string& what, const std::string& text, const std::string& needle,
                       int depth = Json::kDefaultMaxDepth) {
  try {
    Json::parse(text, depth);
    check(false, what, "parsed without error");
  } catch (const JsonError& e) {
    const std::string msg = e.what();
    check(msg.find(needle) != std::string::npos && e.offset != JsonError::npos, what, "message: " + msg);
  }
}

// ---- tiny writers ----------------------------------------------------------

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string make_dir(const std::string& name) {
  const std::string d = g_root + "/" + name;
  ::mkdir(d.c_str(), 0755);
  return d;
}

std::string u64le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}

// A safetensors file from a raw header (padded with spaces to 8 bytes) and data.
std::string st_raw(const std::string& header, const std::string& data) {
  std::string h = header;
  while (h.size() % 8) h += ' ';
  return u64le(h.size()) + h + data;
}

struct T {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

std::string shape_json(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

// Well-formed file: tensors laid out contiguously in the given order.
std::string st_file(const std::vector<T>& ts, const std::string& meta = "{\"format\":\"pt\"}") {
  std::string header = "{\"__metadata__\":" + meta;
  std::string data;
  for (const auto& t : ts) {
    const size_t b = data.size();
    data += t.bytes;
    header += ",\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":" + shape_json(t.shape) +
              ",\"data_offsets\":[" + std::to_string(b) + "," + std::to_string(data.size()) + "]}";
  }
  return st_raw(header + "}", data);
}

std::string f32_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(&s[0], v.data(), s.size());
  return s;
}
std::string u16_bytes(const std::vector<uint16_t>& v) {
  std::string s;
  for (uint16_t x : v) {
    s += static_cast<char>(x & 0xFF);
    s += static_cast<char>(x >> 8);
  }
  return s;
}

std::vector<float> ramp(size_t n, float start, float step) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + step * static_cast<float>(i);
  return v;
}

const std::string kPre = "base_model.model.model.language_model.layers.";

std::string lora_name(int layer, const std::string& mod, char ab, const std::string& adapter = "") {
  return kPre + std::to_string(layer) + "." + mod + ".lora_" + ab + (adapter.empty() ? "" : "." + adapter) + ".weight";
}

// A/B pair of F32 tensors with r x in and out x r.
void add_pair(std::vector<T>& ts, int layer, const std::string& mod, int64_t r, int64_t in, int64_t out,
              float seed = 0.01f) {
  ts.push_back({lora_name(layer, mod, 'A'), "F32", {r, in}, f32_bytes(ramp(r * in, seed, 0.01f))});
  ts.push_back({lora_name(layer, mod, 'B'), "F32", {out, r}, f32_bytes(ramp(out * r, -seed, -0.02f))});
}

// adapter_config.json with the AR's fields; overrides replace (or add) keys; a
// value of "" removes the key. Values are raw JSON.
std::string config_json(std::map<std::string, std::string> over = {}) {
  std::vector<std::pair<std::string, std::string>> base = {
      {"alpha_pattern", "{}"},
      {"auto_mapping", "null"},
      {"base_model_name_or_path", "\"google/gemma-4-E2B\""},
      {"bias", "\"none\""},
      {"fan_in_fan_out", "false"},
      {"inference_mode", "true"},
      {"init_lora_weights", "true"},
      {"layers_pattern", "null"},
      {"layers_to_transform", "null"},
      {"lora_alpha", "16"},
      {"lora_bias", "false"},
      {"lora_dropout", "0.05"},
      {"modules_to_save", "null"},
      {"peft_type", "\"LORA\""},
      {"peft_version", "\"0.19.1\""},
      {"qalora_group_size", "16"},
      {"r", "2"},
      {"rank_pattern", "{}"},
      {"revision", "null"},
      {"target_modules", "\"model.language_model.layers.\\\\d+.(self_attn|mlp).(q|k|v|o|gate|up|down)_proj\""},
      {"task_type", "\"CAUSAL_LM\""},
      {"use_dora", "false"},
      {"use_qalora", "false"},
      {"use_rslora", "false"},
  };
  std::string s = "{\n";
  bool first = true;
  auto emit = [&](const std::string& k, const std::string& v) {
    s += std::string(first ? "" : ",\n") + "  \"" + k + "\": " + v;
    first = false;
  };
  for (auto& [k, v] : base) {
    auto it = over.find(k);
    if (it != over.end()) {
      if (!it->second.empty()) emit(k, it->second);
      over.erase(it);
    } else {
      emit(k, v);
    }
  }
  for (auto& [k, v] : over)
    if (!v.empty()) emit(k, v);
  return s + "\n}\n";
}

int g_dirs = 0;
// Writes an adapter dir; returns its path.
std::string adapter(const std::string& config, const std::string& safetensors) {
  const std::string d = make_dir("a" + std::to_string(g_dirs++));
  write_file(d + "/adapter_config.json", config);
  write_file(d + "/adapter_model.safetensors", safetensors);
  return d;
}

// The standard small adapter: layer 0 q (4->6), layer 1 k (4->3), layer 2 gate (4->5), all r=2.
std::vector<T> standard_tensors() {
  std::vector<T> ts;
  add_pair(ts, 0, "self_attn.q_proj", 2, 4, 6, 0.01f);
  add_pair(ts, 1, "self_attn.k_proj", 2, 4, 3, 0.02f);
  add_pair(ts, 2, "mlp.gate_proj", 2, 4, 5, 0.03f);
  return ts;
}

// ---- tests -----------------------------------------------------------------

void test_json() {
  {
    Json j = Json::parse(R"( {"a": [1, -2.5e3, true, false, null], "s": "x\"\\\/\b\f\n\r\t\u00e9\u20ac\ud83d\ude00", "o": {}} )");
    check(j.is_object() && j.size() == 3, "json: object with 3 members");
    check(j.as_object()[0].first == "a" && j.as_object()[2].first == "o", "json: keys keep file order");
    const Json& a = j.at("a");
    check(a.size() == 5 && a.at(0).as_int64() == 1 && near(a.at(1).as_number(), -2500) && a.at(2).as_bool() &&
              !a.at(3).as_bool() && a.at(4).is_null(),
          "json: array values");
    check(j.at("s").as_string() == "x\"\\/\b\f\n\r\t\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", "json: escapes and surrogate pair -> UTF-8");
    check(!a.at(1).is_integer() && a.at(0).is_integer(), "json: is_integer follows the lexeme");
  }
  {
    Json j = Json::parse("[18446744073709551615, 9007199254740993, \"\xE2\x82\xAC\"]");
    check(j.at(0).as_uint64() == 18446744073709551615ull, "json: exact u64 max from lexeme");
    check(j.at(1).as_int64() == 9007199254740993ll, "json: exact integer above 2^53");
    check(j.at(2).as_string() == "\xE2\x82\xAC", "json: raw UTF-8 kept");
  }
  try {
    Json::parse("{\"a\": 1}").at("a").as_string();
    check(false, "json: type mismatch throws");
  } catch (const JsonError& e) {
    check(std::string(e.what()).find("expected string, got number") != std::string::npos, "json: type mismatch message",
          e.what());
  }
  try {
    Json::parse("{\"a\": 1}").at("b");
    check(false, "json: missing key throws");
  } catch (const JsonError& e) {
    check(std::string(e.what()).find("missing key \"b\"") != std::string::npos, "json: missing key message", e.what());
  }
  try {
    Json::parse("{\n  \"a\": 1,\n  \"b\": tru }");
    check(false, "json: error position");
  } catch (const JsonError& e) {
    check(e.line == 3 && e.column == 8 && std::string(e.what()).find("line 3, column 8") != std::string::npos,
          "json: error position (line/column)", e.what());
  }
  expect_json_error("json: trailing comma", "[1,2,]", "expected a value");
  expect_json_error("json: trailing comma in object", "{\"a\":1,}", "expected a string key");
  expect_json_error("json: leading zero", "[01]", "leading zero");
  expect_json_error("json: bare minus", "-", "expected a digit");
  expect_json_error("json: fraction without digits", "1.", "after '.'");
  expect_json_error("json: NaN", "NaN", "expected a value");
  expect_json_error("json: lone high surrogate", "\"\\ud83d\"", "low surrogate");
  expect_json_error("json: lone low surrogate", "\"\\ude00\"", "lone low surrogate");
  expect_json_error("json: bad escape", "\"\\x41\"", "invalid escape");
  expect_json_error("json: short \\u", "\"\\u12\"", "truncated \\u escape");
  expect_json_error("json: bad hex in \\u", "\"\\u12zz\"", "hex digit");
  expect_json_error("json: raw control char", "\"a\nb\"", "control character");
  expect_json_error("json: invalid UTF-8", "\"\xC0\xAF\"", "UTF-8");
  expect_json_error("json: truncated UTF-8", "\"\xE2\x82", "UTF-8");
  expect_json_error("json: UTF-8 surrogate", "\"\xED\xA0\x80\"", "surrogate");
  expect_json_error("json: unterminated string", "\"abc", "unterminated string");
  expect_json_error("json: duplicate key", "{\"a\":1,\"a\":2}", "duplicate object key \"a\"");
  expect_json_error("json: trailing garbage", "{} x", "after the JSON value");
  expect_json_error("json: empty", "", "unexpected end of input");
  expect_json_error("json: comment", "// x\n{}", "expected a value");
  expect_json_error("json: overflow", "1e999", "out of range");
  expect_json_error("json: depth limit", std::string(65, '[') + std::string(65, ']'), "nesting deeper than 64");
  check(Json::parse(std::string(64, '[') + std::string(64, ']')).is_array(), "json: depth 64 is fine");
  expect_json_error("json: custom depth", "[[[]]]", "nesting deeper than 2", 2);
  // Deep nesting far beyond the limit must fail cleanly (no stack overflow).
  expect_json_error("json: very deep", std::string(1000000, '['), "nesting deeper");
}

void test_safetensors() {
  const std::string d = make_dir("st");
  {
    std::vector<T> ts = {{"w", "F32", {2, 3}, f32_bytes({1, 2, 3, 4, 5, 6})},
                         {"h", "F16", {4}, u16_bytes({0x3C00, 0xC000, 0x0001, 0x7BFF})},
                         {"b", "BF16", {2}, u16_bytes({0x3F80, 0xC040})},
                         {"d", "F64", {1}, std::string("\0\0\0\0\0\0\xF8\x3F", 8)},  // 1.5
                         {"e", "F32", {0, 7}, ""},
                         {"i", "I32", {1}, std::string("\1\0\0\0", 4)}};
    write_file(d + "/ok.safetensors", st_file(ts, "{\"format\":\"pt\",\"note\":\"x\"}"));
    auto f = SafetensorsFile::open(d + "/ok.safetensors", code::HEAD_INVALID);
    check(f->tensors().size() == 6 && f->metadata().at("format") == "pt" && f->metadata().at("note") == "x",
          "safetensors: tensors and metadata");
    const auto* w = f->find("w");
    check(w && w->shape == std::vector<int64_t>{2, 3} && w->nbytes == 24 && f->to_f32(*w)[5] == 6.0f,
          "safetensors: F32 tensor");
    const auto h = f->to_f32(*f->find("h"));
    check(h[0] == 1.0f && h[1] == -2.0f && h[2] == std::ldexp(1.0f, -24) && h[3] == 65504.0f, "safetensors: F16 -> f32");
    const auto b = f->to_f32(*f->find("b"));
    check(b[0] == 1.0f && b[1] == -3.0f, "safetensors: BF16 -> f32");
    check(f->to_f32(*f->find("d"))[0] == 1.5f, "safetensors: F64 -> f32");
    check(f->find("e")->nbytes == 0 && f->to_f32(*f->find("e")).empty(), "safetensors: empty tensor");
    check(f->find("nope") == nullptr, "safetensors: find missing -> nullptr");
    expect_error("safetensors: to_f32 of I32 names tensor and dtype", code::HEAD_INVALID, {"\"i\"", "I32"},
                 [&] { f->to_f32(*f->find("i")); });
  }
  auto open_bytes = [&](const std::string& name, const std::string& bytes) {
    write_file(d + "/" + name, bytes);
    SafetensorsFile::open(d + "/" + name, code::HEAD_INVALID);
  };
  expect_error("safetensors: missing file is IO", code::IO, {"nothere.safetensors"},
               [&] { SafetensorsFile::open(d + "/nothere.safetensors", code::HEAD_INVALID); });
  expect_error("safetensors: directory is IO", code::IO, {"not a regular file"},
               [&] { SafetensorsFile::open(d, code::HEAD_INVALID); });
  expect_error("safetensors: shorter than 8 bytes", code::HEAD_INVALID, {"short.safetensors", "too short"},
               [&] { open_bytes("short.safetensors", "abc"); });
  expect_error("safetensors: header not JSON", code::HEAD_INVALID, {"not valid JSON"},
               [&] { open_bytes("nj.safetensors", st_raw("{\"a\":", "")); });
  expect_error("safetensors: header is an array", code::HEAD_INVALID, {"does not start with '{'"},
               [&] { open_bytes("arr.safetensors", st_raw("[]", "")); });
  expect_error("safetensors: metadata value not a string", code::HEAD_INVALID, {"__metadata__[\"n\"]"},
               [&] { open_bytes("meta.safetensors", st_raw("{\"__metadata__\":{\"n\":1}}", "")); });
  expect_error("safetensors: missing data_offsets", code::HEAD_INVALID, {"tensor \"w\"", "data_offsets"},
               [&] { open_bytes("mo.safetensors", st_raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", "xxxx")); });
  expect_error("safetensors: negative dim", code::HEAD_INVALID, {"tensor \"w\"", "shape[0]"}, [&] {
    open_bytes("neg.safetensors", st_raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "xxxx"));
  });
  expect_error("safetensors: end before begin", code::HEAD_INVALID, {"end before begin"}, [&] {
    open_bytes("eb.safetensors", st_raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", "xxxx"));
  });
  expect_error("safetensors: huge shape", code::HEAD_INVALID, {"too large"}, [&] {
    open_bytes("big.safetensors",
               st_raw("{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", "xxxx"));
  });
  // Header length with the top bit set must not wrap around the size check.
  expect_error("safetensors: header length 2^64-1", code::HEAD_INVALID, {"exceeds file size"},
               [&] { open_bytes("wrap.safetensors", u64le(~0ull) + "{}      "); });
}

void expect_load_error(const std::string& what, const char* code, std::vector<std::string> needles,
                       const std::string& dir) {
  expect_error(what, code, needles, [&] { LoraAdapter::load_peft_dir(dir); });
}

void test_lora_good() {
  // Plain F32 adapter with the AV-style regex.
  {
    const std::string dir = adapter(config_json(), st_file(standard_tensors()));
    auto ad = LoraAdapter::load_peft_dir(dir);
    check(ad->n_pairs() == 3 && ad->max_layer() == 2, "lora: 3 pairs, max layer 2");
    check(ad->warnings().empty(), "lora: no warnings for a clean config",
          ad->warnings().empty() ? "" : ad->warnings()[0]);
    const auto* q = ad->get(0, LoraTarget::Q);
    check(q && q->rank == 2 && q->in == 4 && q->out == 6 && q->a.size() == 8 && q->b.size() == 12, "lora: q shape");
    check(q && near(q->a[0], 0.01f) && near(q->a[7], 0.01f + 0.07f) && near(q->b[11], -0.01f - 0.22f),
          "lora: q values");
    check(q && q->scale == 8.0f, "lora: scale alpha/r = 16/2", q ? std::to_string(q->scale) : "");
    const auto* g = ad->get(2, LoraTarget::GATE);
    check(g && g->out == 5 && near(g->a[0], 0.03f), "lora: mlp gate pair");
    check(ad->get(0, LoraTarget::K) == nullptr && ad->get(5, LoraTarget::Q) == nullptr, "lora: absent pair -> nullptr");
    const auto& c = ad->config();
    check(c.peft_type == "LORA" && c.r == 2 && c.lora_alpha == 16 && c.target_modules_is_regex &&
              c.target_modules.size() == 1 && c.base_model == "google/gemma-4-E2B" && c.unknown_keys.empty(),
          "lora: config fields");
    check(ad->dir() == dir, "lora: dir()");
    check(std::string(lora_target_name(LoraTarget::DOWN)) == "down_proj", "lora: target names");
    // validate() against a model shape function.
    bool threw = false;
    try {
      ad->validate(3, [](int layer, LoraTarget t) -> std::pair<int64_t, int64_t> {
        if (layer == 0 && t == LoraTarget::Q) return {4, 6};
        if (layer == 1 && t == LoraTarget::K) return {4, 3};
        if (layer == 2 && t == LoraTarget::GATE) return {4, 5};
        return {0, 0};
      });
    } catch (const Error&) {
      threw = true;
    }
    check(!threw, "lora: validate accepts matching shapes");
    expect_error("lora: validate rejects a module the model lacks", code::ADAPTER_MISMATCH, {"layer 1 k_proj", "lacks"},
                 [&] {
                   ad->validate(3, [](int layer, LoraTarget t) -> std::pair<int64_t, int64_t> {
                     if (layer == 1 && t == LoraTarget::K) return {0, 0};
                     return t == LoraTarget::Q ? std::pair<int64_t, int64_t>{4, 6}
                                               : std::pair<int64_t, int64_t>{4, 5};
                   });
                 });
  }
  // rsLoRA.
  {
    auto ad = LoraAdapter::load_peft_dir(
        adapter(config_json({{"use_rslora", "true"}, {"r", "4"}, {"lora_alpha", "8"}}), [] {
          std::vector<T> ts;
          add_pair(ts, 0, "self_attn.q_proj", 4, 4, 6);
          return st_file(ts);
        }()));
    const auto* q = ad->get(0, LoraTarget::Q);
    check(q && q->scale == 4.0f && ad->config().use_rslora, "lora: rsLoRA scale alpha/sqrt(r) = 8/2");
  }
  // rank_pattern / alpha_pattern (PEFT: first key, in order, with re.match("(.*\.)?(key)$", module)).
  {
    std::vector<T> ts;
    add_pair(ts, 0, "self_attn.q_proj", 4, 4, 6);  // rank_pattern "layers\.0\.self_attn\.q_proj" -> 4
    add_pair(ts, 1, "self_attn.q_proj", 2, 4, 6);  // no rank key: r=2; alpha "q_proj" -> 6
    add_pair(ts, 1, "self_attn.k_proj", 3, 4, 3);  // rank "k_proj" -> 3; alpha "self_attn.k_proj"? no, "k_proj" first -> 12
    add_pair(ts, 11, "self_attn.o_proj", 2, 6, 4); // rank key "layers.1.self_attn.o_proj" must NOT match layer 11
    add_pair(ts, 2, "mlp.up_proj", 5, 4, 5);       // rank ".*up_proj" -> 5; alpha none -> 16
    const std::string cfg = config_json(
        {{"rank_pattern",
          R"({"layers\\.0\\.self_attn\\.q_proj": 4, "k_proj": 3, "layers.1.self_attn.o_proj": 7, ".*up_proj": 5, "proj": 9})"},
         {"alpha_pattern", R"({"q_proj": 6, "k_proj": 12, "self_attn.k_proj": 99})"}});
    auto ad = LoraAdapter::load_peft_dir(adapter(cfg, st_file(ts)));
    auto scale = [&](int l, LoraTarget t) { const auto* p = ad->get(l, t); return p ? p->scale : -1.0f; };
    check(near(scale(0, LoraTarget::Q), 6.0 / 4), "lora: rank_pattern regex key + alpha_pattern (layer 0 q: 6/4)",
          std::to_string(scale(0, LoraTarget::Q)));
    check(near(scale(1, LoraTarget::Q), 6.0 / 2), "lora: alpha_pattern only (layer 1 q: 6/2)");
    check(near(scale(1, LoraTarget::K), 12.0 / 3), "lora: first matching key wins (layer 1 k: 12/3)",
          std::to_string(scale(1, LoraTarget::K)));
    check(near(scale(11, LoraTarget::O), 16.0 / 2), "lora: layers.1 key does not match layer 11 (16/2)");
    check(near(scale(2, LoraTarget::UP), 16.0 / 5), "lora: '.*up_proj' key (16/5)");
    check(ad->config().rank_pattern.size() == 5 && ad->config().rank_pattern_order[0] == "layers\\.0\\.self_attn\\.q_proj",
          "lora: rank_pattern kept in file order");
  }
  // The pattern rule itself, against Python's re results.
  {
    auto k = [](std::vector<std::string> keys, const std::string& m) {
      const std::string* r = peft_pattern_key(keys, m);
      return r ? *r : std::string("<none>");
    };
    check(k({"q_proj"}, "model.layers.0.self_attn.q_proj") == "q_proj", "pattern: suffix at a dot");
    check(k({"proj"}, "model.layers.0.self_attn.q_proj") == "<none>", "pattern: no match inside a name segment");
    check(k({"attn.q_proj"}, "model.layers.2.self_attn.q_proj") == "<none>", "pattern: segment boundary required");
    check(k({"layers.1.self_attn.q_proj"}, "model.layers.11.self_attn.q_proj") == "<none>", "pattern: layers.1 vs 11");
    check(k({"q_proj", "self_attn.q_proj"}, "model.layers.1.self_attn.q_proj") == "q_proj", "pattern: first key wins");
    check(k({"q_proj|k_proj"}, "model.layers.2.self_attn.k_proj") == "q_proj|k_proj", "pattern: alternation grouped");
    check(k({"model.layers.2.mlp.up_proj"}, "model.layers.2.mlp.up_proj") == "model.layers.2.mlp.up_proj",
          "pattern: whole name");
  }
  // F16 / BF16 weights, adapter-name segment, text-only prefix.
  {
    std::vector<T> ts = {
        {"base_model.model.model.layers.3.self_attn.v_proj.lora_A.default.weight", "F16", {2, 2},
         u16_bytes({0x3C00, 0xC000, 0x3800, 0x0001})},
        {"base_model.model.model.layers.3.self_attn.v_proj.lora_B.default.weight", "BF16", {3, 2},
         u16_bytes({0x3F80, 0xC040, 0x3E80, 0x0000, 0x8000, 0x4120})},
    };
    auto ad = LoraAdapter::load_peft_dir(adapter(config_json({{"target_modules", "[\"v_proj\"]"}}), st_file(ts)));
    const auto* v = ad->get(3, LoraTarget::V);
    check(v && v->a == std::vector<float>{1.0f, -2.0f, 0.5f, std::ldexp(1.0f, -24)}, "lora: F16 A converted");
    check(v && v->b == std::vector<float>{1.0f, -3.0f, 0.25f, 0.0f, -0.0f, 10.0f}, "lora: BF16 B converted");
    check(v && v->in == 2 && v->out == 3 && v->scale == 8.0f, "lora: list target_modules, text-only prefix, adapter name");
  }
  // AR-style config (attention only) with an mlp tensor in the file: PEFT would not create that module -> ignored + warning.
  {
    std::vector<T> ts = standard_tensors();
    auto ad = LoraAdapter::load_peft_dir(adapter(
        config_json({{"target_modules", "\"model.language_model.layers.\\\\d+.self_attn.(q|k|v|o)_proj\""}}),
        st_file(ts)));
    check(ad->n_pairs() == 2 && ad->get(2, LoraTarget::GATE) == nullptr, "lora: tensors outside target_modules ignored");
    check(ad->warnings().size() == 1 && ad->warnings()[0].find("layers.2.mlp.gate_proj") != std::string::npos &&
              ad->warnings()[0].find("target_modules") != std::string::npos,
          "lora: ignored module reported", ad->warnings().empty() ? "" : ad->warnings()[0]);
  }
  // layers_to_transform and exclude_modules.
  {
    auto ad = LoraAdapter::load_peft_dir(adapter(
        config_json({{"layers_to_transform", "[0, 2]"}, {"exclude_modules", "[\"gate_proj\"]"}}), st_file(standard_tensors())));
    check(ad->n_pairs() == 1 && ad->get(0, LoraTarget::Q) && ad->warnings().size() == 2,
          "lora: layers_to_transform / exclude_modules filter");
  }
  // Unknown config keys are reported, not ignored; harmless PEFT keys are not.
  {
    auto ad = LoraAdapter::load_peft_dir(adapter(
        config_json({{"my_custom_key", "123"}, {"eva_config", "null"}, {"megatron_core", "\"megatron.core\""},
                     {"runtime_config", "{\"ephemeral_gpu_offload\": false}"}}),
        st_file(standard_tensors())));
    check(ad->config().unknown_keys == std::vector<std::string>{"my_custom_key"}, "lora: unknown key recorded");
    check(ad->warnings().size() == 1 && ad->warnings()[0].find("my_custom_key") != std::string::npos,
          "lora: unknown key warned");
  }
  // Trailing slash on the dir; a UTF-8 BOM in the config.
  {
    const std::string dir = adapter("\xEF\xBB\xBF" + config_json(), st_file(standard_tensors()));
    check(LoraAdapter::load_peft_dir(dir + "/")->n_pairs() == 3, "lora: trailing slash and BOM accepted");
  }
}

void test_lora_errors() {
  const std::string good_st = st_file(standard_tensors());
  expect_load_error("missing dir", code::IO, {"does not exist", "no_such_dir"}, g_root + "/no_such_dir");
  {
    const std::string d = make_dir("noconfig");
    write_file(d + "/adapter_model.safetensors", good_st);
    expect_load_error("missing adapter_config.json", code::IO, {d + "/adapter_config.json"}, d);
  }
  {
    const std::string d = make_dir("nost");
    write_file(d + "/adapter_config.json", config_json());
    expect_load_error("missing adapter_model.safetensors", code::IO, {d + "/adapter_model.safetensors", "missing"}, d);
    write_file(d + "/adapter_model.bin", "x");
    expect_load_error("adapter_model.bin hint", code::IO, {"adapter_model.bin"}, d);
  }
  expect_load_error("bad JSON", code::ADAPTER_INVALID, {"adapter_config.json", "invalid JSON", "line"},
                    adapter("{\"peft_type\": \"LORA\", \"r\": 2,}", good_st));
  expect_load_error("config not an object", code::ADAPTER_INVALID, {"expected an object"}, adapter("[]", good_st));
  expect_load_error("peft_type IA3", code::ADAPTER_INVALID, {"unsupported peft_type IA3"},
                    adapter(config_json({{"peft_type", "\"IA3\""}}), good_st));
  expect_load_error("missing peft_type", code::ADAPTER_INVALID, {"missing \"peft_type\""},
                    adapter(config_json({{"peft_type", ""}}), good_st));
  expect_load_error("DoRA", code::ADAPTER_INVALID, {"DoRA adapters are not supported"},
                    adapter(config_json({{"use_dora", "true"}}), good_st));
  expect_load_error("r = 0", code::ADAPTER_INVALID, {"\"r\" must be a positive integer"},
                    adapter(config_json({{"r", "0"}}), good_st));
  expect_load_error("r = 2.5", code::ADAPTER_INVALID, {"\"r\" must be a positive integer"},
                    adapter(config_json({{"r", "2.5"}}), good_st));
  expect_load_error("missing lora_alpha", code::ADAPTER_INVALID, {"missing \"lora_alpha\""},
                    adapter(config_json({{"lora_alpha", ""}}), good_st));
  expect_load_error("use_rslora not a bool", code::ADAPTER_INVALID, {"\"use_rslora\"", "true/false"},
                    adapter(config_json({{"use_rslora", "\"yes\""}}), good_st));
  expect_load_error("fan_in_fan_out", code::ADAPTER_INVALID, {"fan_in_fan_out"},
                    adapter(config_json({{"fan_in_fan_out", "true"}}), good_st));
  expect_load_error("lora bias (bias=all)", code::ADAPTER_INVALID, {"lora bias tensors unsupported", "all"},
                    adapter(config_json({{"bias", "\"all\""}}), good_st));
  expect_load_error("lora_bias true", code::ADAPTER_INVALID, {"lora bias tensors unsupported"},
                    adapter(config_json({{"lora_bias", "true"}}), good_st));
  expect_load_error("modules_to_save", code::ADAPTER_INVALID, {"modules_to_save", "input_layernorm", "q_norm"},
                    adapter(config_json({{"modules_to_save", "[\"input_layernorm\", \"q_norm\"]"}}), good_st));
  expect_load_error("trainable tokens", code::ADAPTER_INVALID, {"trainable_token_indices"},
                    adapter(config_json({{"trainable_token_indices", "[1, 2]"}}), good_st));
  expect_load_error("bad rank_pattern value", code::ADAPTER_INVALID, {"rank_pattern[\"q_proj\"]"},
                    adapter(config_json({{"rank_pattern", "{\"q_proj\": \"8\"}"}}), good_st));
  expect_load_error("bad rank_pattern regex", code::ADAPTER_INVALID, {"cannot compile regex", "q_proj("},
                    adapter(config_json({{"rank_pattern", "{\"q_proj(\": 8}"}}), good_st));

  // safetensors-level problems surface as ADAPTER_INVALID naming the file.
  {
    std::string bad = u64le(1000) + "{}";
    expect_load_error("header length > file", code::ADAPTER_INVALID,
                      {"adapter_model.safetensors", "header length 1000 exceeds file size 10"},
                      adapter(config_json(), bad));
  }
  const std::string a_name = lora_name(0, "self_attn.q_proj", 'A'), b_name = lora_name(0, "self_attn.q_proj", 'B');
  auto pair_header = [&](const std::string& a_dtype, const std::string& a_shape, const std::string& a_off,
                         const std::string& b_off) {
    return "{\"" + a_name + "\":{\"dtype\":\"" + a_dtype + "\",\"shape\":" + a_shape + ",\"data_offsets\":" + a_off +
           "},\"" + b_name + "\":{\"dtype\":\"F32\",\"shape\":[6,2],\"data_offsets\":" + b_off + "}}";
  };
  const std::string data80(80, '\0');  // A 2x4 f32 (32) + B 6x2 f32 (48)
  expect_load_error("overlapping offsets", code::ADAPTER_INVALID, {"overlap", a_name, b_name},
                    adapter(config_json(), st_raw(pair_header("F32", "[2,4]", "[0,32]", "[16,64]"), data80)));
  expect_load_error("offsets out of range", code::ADAPTER_INVALID, {"out of range", b_name},
                    adapter(config_json(), st_raw(pair_header("F32", "[2,4]", "[0,32]", "[40,88]"), data80)));
  expect_load_error("shape/offset size mismatch", code::ADAPTER_INVALID, {a_name, "needs 32", "span 28"},
                    adapter(config_json(), st_raw(pair_header("F32", "[2,4]", "[0,28]", "[32,80]"), data80)));
  expect_load_error("unknown dtype", code::ADAPTER_INVALID, {a_name, "unknown or unsupported dtype \"F7\""},
                    adapter(config_json(), st_raw(pair_header("F7", "[2,4]", "[0,32]", "[32,80]"), data80)));
  expect_load_error("integer dtype for LoRA", code::ADAPTER_INVALID, {a_name, "I32", "F32, F16 or BF16"},
                    adapter(config_json(), st_raw(pair_header("I32", "[2,4]", "[0,32]", "[32,80]"), data80)));
  expect_load_error("1-D LoRA tensor", code::ADAPTER_INVALID, {a_name, "1 dimensions"},
                    adapter(config_json(), st_raw(pair_header("F32", "[8]", "[0,32]", "[32,80]"), data80)));
  {
    auto ts = standard_tensors();
    ts.push_back({"base_model.model.model.language_model.embed_tokens.lora_embedding_A", "F32", {2, 4},
                  f32_bytes(ramp(8, 0, 1))});
    expect_load_error("unknown tensor name (lora_embedding_A)", code::ADAPTER_INVALID,
                      {"embed_tokens.lora_embedding_A", "embedding"}, adapter(config_json(), st_file(ts)));
  }
  {
    auto ts = standard_tensors();
    ts.push_back({kPre + "0.self_attn.q_proj.lora_magnitude_vector", "F32", {6}, f32_bytes(ramp(6, 1, 0))});
    expect_load_error("DoRA magnitude tensor", code::ADAPTER_INVALID, {"lora_magnitude_vector", "DoRA"},
                      adapter(config_json(), st_file(ts)));
  }
  {
    auto ts = standard_tensors();
    ts.push_back({kPre + "0.self_attn.q_norm.weight", "F32", {2}, f32_bytes({1, 1})});
    expect_load_error("unknown tensor name (norm weight)", code::ADAPTER_INVALID, {"self_attn.q_norm.weight"},
                      adapter(config_json(), st_file(ts)));
  }
  {
    auto ts = standard_tensors();
    ts.push_back({kPre + "0.mlp.q_proj.lora_A.weight", "F32", {2, 4}, f32_bytes(ramp(8, 0, 1))});
    expect_load_error("q_proj under mlp is not a known module", code::ADAPTER_INVALID, {"mlp.q_proj"},
                      adapter(config_json(), st_file(ts)));
  }
  {
    auto ts = standard_tensors();
    ts.push_back({kPre + "07.self_attn.q_proj.lora_A.weight", "F32", {2, 4}, f32_bytes(ramp(8, 0, 1))});
    expect_load_error("leading-zero layer index", code::ADAPTER_INVALID, {"layers.07"},
                      adapter(config_json(), st_file(ts)));
  }
  {
    std::vector<T> ts;
    add_pair(ts, 0, "self_attn.q_proj", 2, 4, 6);
    ts.pop_back();  // drop B
    expect_load_error("A without B", code::ADAPTER_INVALID, {a_name, "no matching lora_B"},
                      adapter(config_json(), st_file(ts)));
  }
  {
    std::vector<T> ts;
    add_pair(ts, 0, "self_attn.q_proj", 2, 4, 6);
    ts.erase(ts.begin());  // drop A
    expect_load_error("B without A", code::ADAPTER_INVALID, {b_name, "no matching lora_A"},
                      adapter(config_json(), st_file(ts)));
  }
  {
    std::vector<T> ts = {{a_name, "F32", {2, 4}, f32_bytes(ramp(8, 0, 1))},
                         {b_name, "F32", {6, 3}, f32_bytes(ramp(18, 0, 1))}};
    expect_load_error("A/B rank mismatch", code::ADAPTER_INVALID, {a_name, b_name, "rank 2", "rank 3"},
                      adapter(config_json(), st_file(ts)));
  }
  {
    std::vector<T> ts;
    add_pair(ts, 0, "self_attn.q_proj", 4, 4, 6);
    expect_load_error("rank differs from config r", code::ADAPTER_INVALID,
                      {a_name, b_name, "rank 4", "r = 2", "model.language_model.layers.0.self_attn.q_proj"},
                      adapter(config_json(), st_file(ts)));
    expect_load_error("rank differs from rank_pattern", code::ADAPTER_INVALID, {"rank_pattern[\"q_proj\"] = 8"},
                      adapter(config_json({{"rank_pattern", "{\"q_proj\": 8}"}}), st_file(ts)));
  }
  {
    std::vector<T> ts = standard_tensors();
    // Same module under the text-only prefix.
    ts.push_back({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "F32", {2, 4}, f32_bytes(ramp(8, 0, 1))});
    expect_load_error("duplicate LoRA matrix", code::ADAPTER_INVALID, {"same LoRA matrix", a_name},
                      adapter(config_json({{"target_modules", "null"}}), st_file(ts)));
  }
  {
    std::vector<T> ts = {{lora_name(0, "self_attn.q_proj", 'A', "one"), "F32", {2, 4}, f32_bytes(ramp(8, 0, 1))},
                         {lora_name(0, "self_attn.q_proj", 'B', "two"), "F32", {6, 2}, f32_bytes(ramp(12, 0, 1))}};
    expect_load_error("two adapter names", code::ADAPTER_INVALID, {"\"two\"", "\"one\""},
                      adapter(config_json(), st_file(ts)));
  }
  {
    std::vector<T> ts = standard_tensors();
    ts.push_back({kPre + "0.self_attn.q_proj.lora_A.bias", "F32", {2}, f32_bytes({0, 0})});
    expect_load_error("lora bias tensor", code::ADAPTER_INVALID, {"lora_A.bias", "bias"},
                      adapter(config_json(), st_file(ts)));
  }
  expect_load_error("nothing selected by target_modules", code::ADAPTER_INVALID, {"none of its 6 LoRA tensors"},
                    adapter(config_json({{"target_modules", "[\"down_proj\"]"}}), good_st));
}

}  // namespace

int main() {
  char tmpl[] = "/tmp/lora_check.XXXXXX";
  if (!mkdtemp(tmpl)) {
    std::perror("mkdtemp");
    return 2;
  }
  g_root = tmpl;
  try {
    test_json();
    test_safetensors();
    test_lora_good();
    test_lora_errors();
  } catch (const std::exception& e) {
    check(false, "unexpected exception escaped a test", e.what());
  }
  const std::string rm = "rm -rf '" + g_root + "'";
  if (std::system(rm.c_str()) != 0) std::printf("note: could not remove %s\n", g_root.c_str());
  std::printf("lora_check: %d passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}
