// safetensors reader over a read-only mmap; see safetensors.h.
#include "formats/safetensors.h"


#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string_view>

#include "common/json.h"
#include "formats/quant.h"

namespace nla {

namespace {


uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

bool host_is_little_endian() {
  const uint16_t one = 1;
  uint8_t b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

int64_t SafetensorsFile::Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated at open not to overflow
  return n;
}

size_t SafetensorsFile::dtype_size(const std::string& dtype) {
  static const std::pair<const char*, size_t> kTable[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},   {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2},  {"BF16", 2},    {"I32", 4},     {"U32", 4},
      {"F32", 4},  {"I64", 8}, {"U64", 8},  {"F64", 8},     {"C64", 8},
  };
  for (const auto& [name, size] : kTable)
    if (dtype == name) return size;
  return 0;
}

void SafetensorsFile::fail(const std::string& what) const { throw Error(error_code_, path_ + ": " + what); }

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path, const char* error_code) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->error_code_ = error_code ? error_code : code::INTERNAL;

  f->map_ = MappedFile(path);
  f->base_ = f->map_.data();
  f->size_ = f->map_.size();
  if (f->size_ < 8)
    f->fail("file is " + std::to_string(f->size_) + " bytes, too short for a safetensors file (at least an 8-byte header length)");
  try {
    f->parse_header();  // on throw, the unique_ptr unmaps
  } catch (const Error&) {
    f->map_.check_intact();  // zeros read from a shrunk file are an I/O error, not malformed content
    throw;
  }
  f->map_.check_intact();
  return f;
}

SafetensorsFile::~SafetensorsFile() = default;

const SafetensorsFile::Tensor* SafetensorsFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::parse_header() {
  if (!host_is_little_endian()) throw Error(code::INTERNAL, "safetensors reader requires a little-endian host");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | base_[i];
  header_len_ = n;
  const uint64_t avail = size_ - 8;
  if (n > avail)
    fail("header length " + std::to_string(n) + " exceeds file size " + std::to_string(size_) + " (at most " +
         std::to_string(avail) + " bytes follow the length field)");
  if (n > kMaxHeaderBytes)
    fail("header length " + std::to_string(n) + " exceeds the " + std::to_string(kMaxHeaderBytes) + "-byte limit");
  if (n < 2) fail("header length " + std::to_string(n) + " is too short for a JSON object");
  const std::string_view text(reinterpret_cast<const char*>(base_ + 8), static_cast<size_t>(n));
  if (text[0] != '{') fail("header does not start with '{'");

  Json header;
  try {
    header = Json::parse(text);
  } catch (const JsonError& e) {
    fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(std::string("header is a JSON ") + header.type_name() + ", expected an object");

  const uint64_t data_start = 8 + n;
  const uint64_t data_size = size_ - data_start;
  const uint8_t* data = base_ + data_start;

  for (const auto& [name, entry] : header.as_object()) {
    if (name == "__metadata__") {
      if (entry.is_null()) continue;
      if (!entry.is_object())
        fail(std::string("__metadata__ is a JSON ") + entry.type_name() + ", expected an object of strings");
      for (const auto& [k, v] : entry.as_object()) {
        if (!v.is_string())
          fail("__metadata__[\"" + k + "\"] is a JSON " + v.type_name() + ", expected a string");
        metadata_[k] = v.as_string();
      }
      continue;
    }
    const std::string where = "tensor \"" + name + "\"";
    if (!entry.is_object()) fail(where + ": entry is a JSON " + entry.type_name() + ", expected an object");
    const Json* dtype = entry.find("dtype");
    const Json* shape = entry.find("shape");
    const Json* offsets = entry.find("data_offsets");
    if (!dtype) fail(where + ": missing \"dtype\"");
    if (!shape) fail(where + ": missing \"shape\"");
    if (!offsets) fail(where + ": missing \"data_offsets\"");
    if (!dtype->is_string()) fail(where + ": \"dtype\" is a JSON " + dtype->type_name() + ", expected a string");
    if (!shape->is_array()) fail(where + ": \"shape\" is a JSON " + shape->type_name() + ", expected an array");
    if (!offsets->is_array() || offsets->size() != 2)
      fail(where + ": \"data_offsets\" must be an array of two integers [begin, end]");

    Tensor t;
    t.name = name;
    t.dtype = dtype->as_string();
    const size_t esize = dtype_size(t.dtype);
    if (esize == 0) fail(where + ": unknown or unsupported dtype \"" + t.dtype + "\"");

    // Element count with overflow checks (each dim and the product stay below 2^63).
    uint64_t numel = 1;
    bool overflow = false;
    for (size_t i = 0; i < shape->size(); ++i) {
      const Json& d = shape->at(i);
      if (!d.is_integer() || d.number_lexeme().empty() || d.number_lexeme()[0] == '-')
        fail(where + ": shape[" + std::to_string(i) + "] must be a non-negative integer");
      uint64_t dim;
      try {
        dim = d.as_uint64();
      } catch (const JsonError&) {
        fail(where + ": shape[" + std::to_string(i) + "] = " + d.number_lexeme() + " is out of range");
      }
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(where + ": shape[" + std::to_string(i) + "] = " + d.number_lexeme() + " is out of range");
      t.shape.push_back(static_cast<int64_t>(dim));
      if (dim != 0 && numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / dim) overflow = true;
      else numel *= dim;
    }
    // A zero dimension anywhere makes the product 0 even if an earlier partial product "overflowed".
    if (std::find(t.shape.begin(), t.shape.end(), 0) != t.shape.end()) {
      overflow = false;
      numel = 0;
    }
    if (overflow || numel > std::numeric_limits<uint64_t>::max() / esize)
      fail(where + ": shape " + shape_str(t.shape) + " is too large");
    const uint64_t expect_bytes = numel * esize;

    uint64_t begin = 0, end = 0;
    for (size_t i = 0; i < 2; ++i) {
      const Json& o = offsets->at(i);
      if (!o.is_integer() || o.number_lexeme().empty() || o.number_lexeme()[0] == '-')
        fail(where + ": data_offsets[" + std::to_string(i) + "] must be a non-negative integer");
      uint64_t v;
      try {
        v = o.as_uint64();
      } catch (const JsonError&) {
        fail(where + ": data_offsets[" + std::to_string(i) + "] = " + o.number_lexeme() + " is out of range");
      }
      (i == 0 ? begin : end) = v;
    }
    if (end < begin)
      fail(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] end before begin");
    if (end > data_size)
      fail(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
           "] out of range (data section is " + std::to_string(data_size) + " bytes)");
    if (end - begin != expect_bytes)
      fail(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] span " +
           std::to_string(end - begin) + " bytes but " + t.dtype + " " + shape_str(t.shape) + " needs " +
           std::to_string(expect_bytes));
    t.offset = begin;
    t.nbytes = static_cast<size_t>(end - begin);
    t.data = data + begin;
    index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  // No two tensors may share bytes (empty tensors occupy nothing).
  std::vector<size_t> order;
  for (size_t i = 0; i < tensors_.size(); ++i)
    if (tensors_[i].nbytes) order.push_back(i);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return tensors_[a].offset != tensors_[b].offset ? tensors_[a].offset < tensors_[b].offset
                                                     : tensors_[a].nbytes < tensors_[b].nbytes;
  });
  for (size_t k = 1; k < order.size(); ++k) {
    const Tensor& prev = tensors_[order[k - 1]];
    const Tensor& cur = tensors_[order[k]];
    if (cur.offset < prev.offset + prev.nbytes)
      fail("tensor \"" + cur.name + "\" data_offsets [" + std::to_string(cur.offset) + ", " +
           std::to_string(cur.offset + cur.nbytes) + "] overlap tensor \"" + prev.name + "\" [" +
           std::to_string(prev.offset) + ", " + std::to_string(prev.offset + prev.nbytes) + "]");
  }
}

std::vector<float> SafetensorsFile::to_f32(const Tensor& t) const {
  const size_t esize = dtype_size(t.dtype);
  if (esize == 0 || t.nbytes % esize != 0) fail("tensor \"" + t.name + "\": inconsistent dtype/size");
  const size_t n = t.nbytes / esize;
  std::vector<float> out(n);
  const uint8_t* p = t.data;
  if (t.dtype == "F32") {
    if (n) std::memcpy(out.data(), p, n * 4);
  } else if (t.dtype == "F16") {
    for (size_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(load_u16(p + 2 * i));
  } else if (t.dtype == "BF16") {
    for (size_t i = 0; i < n; ++i) out[i] = bf16_to_fp32(load_u16(p + 2 * i));
  } else if (t.dtype == "F64") {
    for (size_t i = 0; i < n; ++i) {
      double d;
      std::memcpy(&d, p + 8 * i, 8);
      out[i] = static_cast<float>(d);
    }
  } else {
    fail("tensor \"" + t.name + "\" has dtype " + t.dtype + "; only F32, F16, BF16 and F64 convert to f32");
  }
  map_.check_intact();
  return out;
}

}  // namespace nla
