// GGUF reader: parses the header, metadata and tensor directory of a
// read-only mapping, validating every length, count and offset against the
// file size before it is used.
#include "formats/gguf.h"


#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <utility>

namespace nla {

namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as little-endian u32
constexpr uint32_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;
constexpr int kMaxArrayNesting = 16;

const char* value_type_name(uint32_t t) {
  switch (t) {
    case 0: return "u8";
    case 1: return "i8";
    case 2: return "u16";
    case 3: return "i16";
    case 4: return "u32";
    case 5: return "i32";
    case 6: return "f32";
    case 7: return "bool";
    case 8: return "string";
    case 9: return "array";
    case 10: return "u64";
    case 11: return "i64";
    case 12: return "f64";
    default: return "unknown";
  }
}

// Fixed byte width of a scalar value type; 0 for string/array/unknown.
size_t scalar_width(uint32_t t) {
  switch (t) {
    case 0: case 1: case 7: return 1;
    case 2: case 3: return 2;
    case 4: case 5: case 6: return 4;
    case 10: case 11: case 12: return 8;
    default: return 0;
  }
}

// The fewest bytes one element of this type can occupy (for rejecting counts
// that cannot fit in the remaining file before looping over them).
size_t min_elem_bytes(uint32_t t) {
  if (t == 8) return 8;       // u64 length + empty string
  if (t == 9) return 4 + 8;   // element type + count
  return scalar_width(t);
}

bool is_integer_type(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::UINT16:
    case GgufValueType::INT16: case GgufValueType::UINT32: case GgufValueType::INT32:
    case GgufValueType::UINT64: case GgufValueType::INT64:
      return true;
    default:
      return false;
  }
}

bool is_unsigned_type(GgufValueType t) {
  return t == GgufValueType::UINT8 || t == GgufValueType::UINT16 || t == GgufValueType::UINT32 ||
         t == GgufValueType::UINT64;
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// Printable form of raw bytes (for naming a bad magic).
std::string printable(const uint8_t* p, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    char c = static_cast<char>(p[i]);
    if (p[i] >= 0x20 && p[i] < 0x7f) {
      s += c;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", p[i]);
      s += buf;
    }
  }
  return s;
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

}  // namespace

bool gguf_is_integer_type(GgufValueType t) { return is_integer_type(t); }
bool gguf_is_unsigned_type(GgufValueType t) { return is_unsigned_type(t); }

// Sequential reader over the mapping; every read is checked against the end.
struct GgufParser {
  GgufFile& f;
  const uint8_t* p;
  uint64_t size;
  uint64_t pos = 0;

  explicit GgufParser(GgufFile& file) : f(file), p(file.map_.data()), size(file.size_) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(code::GGUF_MALFORMED, f.path_ + ": " + what);
  }

  uint64_t remaining() const { return size - pos; }

  void need(uint64_t n, const std::string& what) const {
    if (n > remaining()) {
      fail("truncated while reading " + what + " at offset " + std::to_string(pos) + " (needs " +
           std::to_string(n) + " bytes, " + std::to_string(remaining()) + " left in file of size " +
           std::to_string(size) + ")");
    }
  }

  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }

  // Reads a length-prefixed string.
  std::string read_string(const std::string& what) {
    const uint64_t n = read<uint64_t>(what + " length");
    if (n > remaining()) {
      fail(what + " length " + std::to_string(n) + " at offset " + std::to_string(pos - 8) +
           " exceeds the " + std::to_string(remaining()) + " bytes left in file of size " +
           std::to_string(size));
    }
    std::string s(reinterpret_cast<const char*>(p + pos), static_cast<size_t>(n));
    pos += n;
    return s;
  }

  // Skips a length-prefixed string without materialising it.
  void skip_string(const std::string& what) {
    const uint64_t n = read<uint64_t>(what + " length");
    if (n > remaining()) {
      fail(what + " length " + std::to_string(n) + " exceeds the " + std::to_string(remaining()) +
           " bytes left in file of size " + std::to_string(size));
    }
    pos += n;
  }

  // Reads one scalar into v (type already set by the caller).
  void read_scalar(uint32_t t, GgufValue& v, const std::string& what) {
    switch (t) {
      case 0: { uint64_t x = read<uint8_t>(what); set_unsigned(v, x); break; }
      case 2: { uint64_t x = read<uint16_t>(what); set_unsigned(v, x); break; }
      case 4: { uint64_t x = read<uint32_t>(what); set_unsigned(v, x); break; }
      case 10: { uint64_t x = read<uint64_t>(what); set_unsigned(v, x); break; }
      case 1: set_signed(v, read<int8_t>(what)); break;
      case 3: set_signed(v, read<int16_t>(what)); break;
      case 5: set_signed(v, read<int32_t>(what)); break;
      case 11: set_signed(v, read<int64_t>(what)); break;
      case 6: v.f = read<float>(what); break;
      case 12: v.f = read<double>(what); break;
      case 7: {
        const bool b = read<uint8_t>(what) != 0;  // any nonzero byte is true, as ggml reads it
        v.i = b ? 1 : 0;
        v.u = v.i;
        break;
      }
      case 8: v.s = read_string(what); break;
      default: fail(what + " has unknown value type " + std::to_string(t));
    }
  }

  static void set_unsigned(GgufValue& v, uint64_t x) {
    v.u = x;
    v.i = x <= static_cast<uint64_t>(INT64_MAX) ? static_cast<int64_t>(x) : 0;
    v.f = static_cast<double>(x);
  }
  static void set_signed(GgufValue& v, int64_t x) {
    v.i = x;
    v.u = x >= 0 ? static_cast<uint64_t>(x) : 0;
    v.f = static_cast<double>(x);
  }

  // Checks that `count` elements of type `t` can possibly fit in what is left.
  void check_count(uint32_t t, uint64_t count, const std::string& what) {
    const size_t m = min_elem_bytes(t);
    if (m == 0) fail(what + " has unknown element type " + std::to_string(t));
    uint64_t total;
    if (mul_overflows(count, m, &total) || total > remaining()) {
      fail(what + " count " + std::to_string(count) + " of " + value_type_name(t) +
           " cannot fit in the " + std::to_string(remaining()) + " bytes left in file of size " +
           std::to_string(size));
    }
  }

  // Skips an array body (element type and count already read), recursively.
  void skip_array(uint32_t t, uint64_t count, const std::string& what, int depth) {
    if (depth > kMaxArrayNesting) fail(what + " nests arrays deeper than " + std::to_string(kMaxArrayNesting));
    check_count(t, count, what);
    if (t == 8) {
      for (uint64_t k = 0; k < count; ++k) skip_string(what + "[" + std::to_string(k) + "]");
    } else if (t == 9) {
      for (uint64_t k = 0; k < count; ++k) {
        const std::string sub = what + "[" + std::to_string(k) + "]";
        const uint32_t et = read<uint32_t>(sub + " element type");
        const uint64_t n = read<uint64_t>(sub + " count");
        skip_array(et, n, sub, depth + 1);
      }
    } else {
      pos += count * scalar_width(t);  // fits: checked above
    }
  }

  void read_array(GgufValue& v, const std::string& what) {
    const uint32_t et = read<uint32_t>(what + " element type");
    const uint64_t n = read<uint64_t>(what + " count");
    v.count = n;
    if (et > 12) fail(what + " has unknown array element type " + std::to_string(et));
    v.elem_type = static_cast<GgufValueType>(et);
    check_count(et, n, what);
    const size_t cnt = static_cast<size_t>(n);
    const uint8_t* q = p + pos;
    switch (et) {
      case 0: fill_ints<uint8_t>(v, q, cnt); break;
      case 1: fill_ints<int8_t>(v, q, cnt); break;
      case 2: fill_ints<uint16_t>(v, q, cnt); break;
      case 3: fill_ints<int16_t>(v, q, cnt); break;
      case 4: fill_ints<uint32_t>(v, q, cnt); break;
      case 5: fill_ints<int32_t>(v, q, cnt); break;
      case 11: fill_ints<int64_t>(v, q, cnt); break;
      case 10: {
        v.ints.resize(cnt);
        for (size_t k = 0; k < cnt; ++k) {
          uint64_t x;
          std::memcpy(&x, q + 8 * k, 8);
          if (x > static_cast<uint64_t>(INT64_MAX)) {
            fail(what + "[" + std::to_string(k) + "] = " + std::to_string(x) + " does not fit in int64");
          }
          v.ints[k] = static_cast<int64_t>(x);
        }
        break;
      }
      case 7: {
        v.ints.resize(cnt);
        for (size_t k = 0; k < cnt; ++k) v.ints[k] = q[k] != 0 ? 1 : 0;
        break;
      }
      case 6: {
        v.floats.resize(cnt);
        for (size_t k = 0; k < cnt; ++k) {
          float x;
          std::memcpy(&x, q + 4 * k, 4);
          v.floats[k] = x;
        }
        break;
      }
      case 12: {
        v.floats.resize(cnt);
        std::memcpy(v.floats.data(), q, cnt * 8);
        break;
      }
      case 8: {
        v.strings.reserve(cnt);
        for (size_t k = 0; k < cnt; ++k) {
          // Hot path for vocabularies (hundreds of thousands of strings): inline
          // the bounds checks and build the element message only on failure.
          if (remaining() < 8) need(8, what + "[" + std::to_string(k) + "] length");
          uint64_t len;
          std::memcpy(&len, p + pos, 8);
          pos += 8;
          if (len > remaining()) {
            fail(what + "[" + std::to_string(k) + "] length " + std::to_string(len) + " exceeds the " +
                 std::to_string(remaining()) + " bytes left in file of size " + std::to_string(size));
          }
          v.strings.emplace_back(reinterpret_cast<const char*>(p + pos), static_cast<size_t>(len));
          pos += len;
        }
        return;  // pos already advanced
      }
      case 9: {
        for (uint64_t k = 0; k < n; ++k) {
          const std::string sub = what + "[" + std::to_string(k) + "]";
          const uint32_t st = read<uint32_t>(sub + " element type");
          const uint64_t sn = read<uint64_t>(sub + " count");
          skip_array(st, sn, sub, 1);
        }
        return;
      }
    }
    pos += n * scalar_width(et);
  }

  template <typename T>
  static void fill_ints(GgufValue& v, const uint8_t* q, size_t cnt) {
    v.ints.resize(cnt);
    for (size_t k = 0; k < cnt; ++k) {
      T x;
      std::memcpy(&x, q + sizeof(T) * k, sizeof(T));
      v.ints[k] = static_cast<int64_t>(x);
    }
  }

  void parse() {
    if (size < 4) fail("truncated header: file is " + std::to_string(size) + " bytes, not a GGUF file");
    const uint32_t magic = read<uint32_t>("magic");
    if (magic != kGgufMagic) {
      throw Error(code::GGUF_MALFORMED, f.path_ + ": not a GGUF file (magic '" + printable(p, 4) + "' " +
                                            hex32(magic) + ", expected 'GGUF')");
    }
    const uint32_t version = read<uint32_t>("header version");
    if (version == 1) fail("GGUF version 1 is not supported (only versions 2 and 3)");
    if (version != 2 && version != 3) {
      if ((version & 0xFFFF) == 0) {
        fail("GGUF version " + hex32(version) + " is not supported (byte-swapped? big-endian files are not supported)");
      }
      fail("GGUF version " + std::to_string(version) + " is not supported (only versions 2 and 3)");
    }
    f.version_ = version;
    const int64_t n_tensors = read<int64_t>("header tensor count");
    const int64_t n_kv = read<int64_t>("header metadata count");
    // Each tensor info needs at least 8 (name len) + 4 (n_dims) + 4 (type) + 8 (offset)
    // bytes and each key/value at least 8 (key len) + 4 (type) + 1 bytes.
    if (n_tensors < 0 || static_cast<uint64_t>(n_tensors) > remaining() / 24) {
      fail("header tensor count " + std::to_string(n_tensors) + " cannot fit in file of size " + std::to_string(size));
    }
    if (n_kv < 0 || static_cast<uint64_t>(n_kv) > remaining() / 13) {
      fail("header metadata count " + std::to_string(n_kv) + " cannot fit in file of size " + std::to_string(size));
    }

    for (int64_t k = 0; k < n_kv; ++k) {
      const std::string key = read_string("metadata key #" + std::to_string(k));
      if (key.empty()) fail("metadata key #" + std::to_string(k) + " is empty");
      const std::string what = "metadata key '" + key + "'";
      const uint32_t t = read<uint32_t>(what + " value type");
      if (t > 12) fail(what + " has unknown value type " + std::to_string(t));
      GgufValue v;
      v.type = static_cast<GgufValueType>(t);
      if (t == 9) {
        read_array(v, what);
      } else {
        read_scalar(t, v, what);
      }
      f.kv_[key] = std::move(v);  // a repeated key: the last value wins
    }

    if (const GgufValue* a = f.find("general.alignment")) {
      if (a->type != GgufValueType::UINT32) {
        fail(std::string("metadata key 'general.alignment' has type ") + value_type_name(static_cast<uint32_t>(a->type)) +
             ", expected u32");
      }
      if (a->u == 0 || (a->u & (a->u - 1)) != 0) {
        fail("metadata key 'general.alignment' = " + std::to_string(a->u) + " is not a nonzero power of two");
      }
      f.alignment_ = static_cast<uint32_t>(a->u);
    } else {
      f.alignment_ = kDefaultAlignment;
    }

    f.tensors_.reserve(static_cast<size_t>(n_tensors));
    for (int64_t k = 0; k < n_tensors; ++k) {
      TensorInfo ti;
      ti.name = read_string("tensor #" + std::to_string(k) + " name");
      const std::string what = "tensor '" + ti.name + "'";
      if (ti.name.empty()) fail("tensor #" + std::to_string(k) + " has an empty name");
      if (f.tensor_index_.count(ti.name)) fail("duplicate tensor name '" + ti.name + "'");
      ti.n_dims = read<uint32_t>(what + " n_dims");
      if (ti.n_dims > kMaxDims) {
        fail(what + " n_dims " + std::to_string(ti.n_dims) + " exceeds the maximum of " + std::to_string(kMaxDims));
      }
      uint64_t nel = 1;
      for (uint32_t d = 0; d < ti.n_dims; ++d) {
        const int64_t ne = read<int64_t>(what + " ne[" + std::to_string(d) + "]");
        if (ne <= 0) fail(what + " ne[" + std::to_string(d) + "] = " + std::to_string(ne) + " is not positive");
        ti.ne[d] = ne;
        if (mul_overflows(nel, static_cast<uint64_t>(ne), &nel) || nel > static_cast<uint64_t>(INT64_MAX)) {
          fail(what + " element count overflows int64");
        }
      }
      ti.type_id = read<uint32_t>(what + " type");
      const TypeTraits& tt = type_traits(ti.type_id);
      if (tt.block_size <= 0 || tt.type_size == 0) {
        fail(what + " has unknown tensor type id " + std::to_string(ti.type_id) + " (block size unknown)");
      }
      if (ti.ne[0] % tt.block_size != 0) {
        fail(what + " of type " + tt.name + " has ne[0] = " + std::to_string(ti.ne[0]) +
             ", not a multiple of the block size " + std::to_string(tt.block_size));
      }
      uint64_t nbytes;
      if (mul_overflows(nel / static_cast<uint64_t>(tt.block_size), tt.type_size, &nbytes) ||
          nbytes > static_cast<uint64_t>(SIZE_MAX)) {
        fail(what + " byte size overflows");
      }
      ti.nbytes = static_cast<size_t>(nbytes);
      ti.offset = read<uint64_t>(what + " data offset");
      f.tensor_index_[ti.name] = f.tensors_.size();
      f.tensors_.push_back(std::move(ti));
    }

    // The data section starts at the next multiple of the alignment.
    const uint64_t align = f.alignment_;
    const uint64_t data_start = (pos + align - 1) / align * align;  // pos <= size, no overflow
    for (TensorInfo& ti : f.tensors_) {
      const std::string what = "tensor '" + ti.name + "'";
      if (ti.offset % align != 0) {
        fail(what + " data offset " + std::to_string(ti.offset) + " is not a multiple of the alignment " +
             std::to_string(align));
      }
      uint64_t begin, end;
      if (__builtin_add_overflow(data_start, ti.offset, &begin) ||
          __builtin_add_overflow(begin, static_cast<uint64_t>(ti.nbytes), &end)) {
        fail(what + " data offset " + std::to_string(ti.offset) + " + size " + std::to_string(ti.nbytes) +
             " overflows (file size " + std::to_string(size) + ")");
      }
      if (end > size) {
        fail(what + " data [" + std::to_string(begin) + ".." + std::to_string(end) +
             ") extends past end of file (size " + std::to_string(size) + ")");
      }
      ti.data = p + begin;
    }
  }
};

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->map_ = MappedFile(path);
  f->size_ = f->map_.size();
  if (f->size_ == 0) throw Error(code::GGUF_MALFORMED, path + ": truncated header: file is empty, not a GGUF file");
  GgufParser parser(*f);
  try {
    parser.parse();  // on throw, ~GgufFile unmaps and closes
  } catch (const Error&) {
    f->map_.check_intact();  // a header read as zeros because the file shrank is an I/O error, not a malformed file
    throw;
  }
  f->map_.check_intact();
  return f;
}

GgufFile::~GgufFile() = default;

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const TensorInfo* GgufFile::tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

[[noreturn]] void key_error(const std::string& path, const std::string& key, const std::string& why) {
  throw Error(code::MODEL_INVALID, path + ": metadata key '" + key + "' " + why);
}

const GgufValue& require(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.find(key);
  if (!v) key_error(f.path(), key, "is missing");
  return *v;
}

std::string type_desc(const GgufValue& v) {
  if (v.type == GgufValueType::ARRAY) {
    return std::string("array of ") + value_type_name(static_cast<uint32_t>(v.elem_type));
  }
  return value_type_name(static_cast<uint32_t>(v.type));
}

}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (v.type != GgufValueType::STRING) key_error(path_, key, "has type " + type_desc(v) + ", expected string");
  return v.s;
}

uint64_t GgufFile::get_uint(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (!is_integer_type(v.type)) key_error(path_, key, "has type " + type_desc(v) + ", expected an unsigned integer");
  if (is_unsigned_type(v.type)) return v.u;
  if (v.i < 0) key_error(path_, key, "= " + std::to_string(v.i) + " is negative, expected an unsigned integer");
  return static_cast<uint64_t>(v.i);
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (!is_integer_type(v.type)) key_error(path_, key, "has type " + type_desc(v) + ", expected an integer");
  if (is_unsigned_type(v.type)) {
    if (v.u > static_cast<uint64_t>(INT64_MAX)) key_error(path_, key, "= " + std::to_string(v.u) + " does not fit in int64");
    return static_cast<int64_t>(v.u);
  }
  return v.i;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (v.type == GgufValueType::FLOAT32 || v.type == GgufValueType::FLOAT64) return v.f;
  if (is_integer_type(v.type)) return is_unsigned_type(v.type) ? static_cast<double>(v.u) : static_cast<double>(v.i);
  key_error(path_, key, "has type " + type_desc(v) + ", expected a number");
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (v.type != GgufValueType::BOOL) key_error(path_, key, "has type " + type_desc(v) + ", expected bool");
  return v.i != 0;
}

const std::vector<int64_t>& GgufFile::get_int_array(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (v.type != GgufValueType::ARRAY || !(is_integer_type(v.elem_type) || v.elem_type == GgufValueType::BOOL)) {
    key_error(path_, key, "has type " + type_desc(v) + ", expected an array of integers");
  }
  return v.ints;
}

const std::vector<double>& GgufFile::get_float_array(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (v.type != GgufValueType::ARRAY ||
      !(v.elem_type == GgufValueType::FLOAT32 || v.elem_type == GgufValueType::FLOAT64)) {
    key_error(path_, key, "has type " + type_desc(v) + ", expected an array of floats");
  }
  return v.floats;
}

const std::vector<std::string>& GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (v.type != GgufValueType::ARRAY || v.elem_type != GgufValueType::STRING) {
    key_error(path_, key, "has type " + type_desc(v) + ", expected an array of strings");
  }
  return v.strings;
}

}  // namespace nla
