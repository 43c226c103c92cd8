// PEFT LoRA adapter loader: adapter_config.json + adapter_model.safetensors.
#include "adapters/lora.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>
#include <set>

#include "adapters/peft_regex.h"
#include "common/json.h"
#include "formats/safetensors.h"

namespace nla {

const char* lora_target_name(LoraTarget t) {
  switch (t) {
    case LoraTarget::Q: return "q_proj";
    case LoraTarget::K: return "k_proj";
    case LoraTarget::V: return "v_proj";
    case LoraTarget::O: return "o_proj";
    case LoraTarget::GATE: return "gate_proj";
    case LoraTarget::UP: return "up_proj";
    case LoraTarget::DOWN: return "down_proj";
    case LoraTarget::COUNT: break;
  }
  return "?";
}

const LoraMatrixPair* LoraAdapter::get(int layer, LoraTarget t) const {
  const auto it = pairs_.find({layer, static_cast<int>(t)});
  return it == pairs_.end() ? nullptr : &it->second;
}

int LoraAdapter::max_layer() const { return pairs_.empty() ? -1 : pairs_.rbegin()->first.first; }

const std::string* peft_pattern_key(const std::vector<std::string>& keys, const std::string& module) {
  for (const auto& key : keys)
    if (PeftRegex::compile_pattern_key(key, "adapter_config.json pattern key").matches(module)) return &key;
  return nullptr;
}

struct LoraLoader {
  LoraAdapter& ad;
  std::string config_path, weights_path;

  static constexpr uint64_t kMaxConfigBytes = 16u << 20;
  // Pattern keys and the NFA work spent matching them over one load: PEFT's configs have at most
  // one key per module (a few hundred) and need a few million steps; beyond these the file is hostile.
  static constexpr size_t kMaxPatternKeys = 4096;
  static constexpr uint64_t kMaxMatchSteps = 200'000'000;
  // Sane ranges: the largest rank / |alpha| / |scale| a LoRA of any real model uses is far below these.
  static constexpr double kMaxRank = 1 << 20;
  static constexpr double kMaxAlpha = 1e6;

  std::vector<PeftRegex> rank_res, alpha_res;  // compiled once, in file order
  uint64_t match_steps = 0;

  [[noreturn]] void cfg_fail(const std::string& what) const {
    throw Error(code::ADAPTER_INVALID, config_path + ": " + what);
  }
  [[noreturn]] void st_fail(const std::string& what) const {
    throw Error(code::ADAPTER_INVALID, weights_path + ": " + what);
  }
  void warn(const std::string& w) { ad.warnings_.push_back(w); }

  static bool is_file(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  }

  // ---- adapter_config.json ------------------------------------------------

  // Reads the whole config. O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer
  // forever; the type check then refuses anything but a regular file before a byte is read.
  std::string read_config_bytes() {
    const int fd = ::open(config_path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      const int e = errno;
      throw Error(code::IO, config_path + ": cannot open: " + std::strerror(e) +
                                (e == ENOENT ? " (a PEFT adapter directory needs adapter_config.json)" : ""));
    }
    struct FdCloser {
      int fd;
      ~FdCloser() { ::close(fd); }
    } closer{fd};
    struct stat st;
    if (fstat(fd, &st) != 0) throw Error(code::IO, config_path + ": cannot stat: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw Error(code::IO, config_path + ": not a regular file");
    if (static_cast<uint64_t>(st.st_size) > kMaxConfigBytes)
      cfg_fail("file larger than " + std::to_string(kMaxConfigBytes) + " bytes");
    std::string text;
    char buf[65536];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw Error(code::IO, config_path + ": read error: " + std::strerror(errno));
      if (n == 0) break;
      text.append(buf, static_cast<size_t>(n));
      if (text.size() > kMaxConfigBytes) cfg_fail("file larger than " + std::to_string(kMaxConfigBytes) + " bytes");
    }
    return text;
  }

  Json read_config() {
    const std::string text = read_config_bytes();
    std::string_view view(text);
    if (view.substr(0, 3) == "\xEF\xBB\xBF") view.remove_prefix(3);  // tolerate a UTF-8 BOM from editors
    Json j;
    try {
      j = Json::parse(view);
    } catch (const JsonError& e) {
      cfg_fail(std::string("invalid JSON: ") + e.what());
    }
    if (!j.is_object()) cfg_fail(std::string("top level is a JSON ") + j.type_name() + ", expected an object");
    return j;
  }

  const Json* field(const Json& cfg, const char* key) const {
    const Json* v = cfg.find(key);
    return v;
  }
  bool opt_bool(const Json& cfg, const char* key, bool dflt) const {
    const Json* v = field(cfg, key);
    if (!v || v->is_null()) return dflt;
    if (!v->is_bool()) cfg_fail(std::string("\"") + key + "\" is a JSON " + v->type_name() + ", expected true/false");
    return v->as_bool();
  }
  static bool integral(const Json& v) { return v.is_number() && std::floor(v.as_number()) == v.as_number(); }
  static std::string shown(const std::string& s) { return s.size() > 80 ? s.substr(0, 80) + "..." : s; }

  int64_t rank_value(const Json& v, const std::string& what) const {
    if (!integral(v) || !(v.as_number() >= 1 && v.as_number() <= kMaxRank))
      cfg_fail(what + " must be a positive integer (at most " + std::to_string(static_cast<int64_t>(kMaxRank)) + "), got " +
               (v.is_number() ? v.number_lexeme() : std::string(v.type_name())));
    return static_cast<int64_t>(v.as_number());
  }
  // Finite and of a size a LoRA scale can have: lora_alpha 1e308 would make alpha/r overflow to
  // infinity in float and every output NaN.
  double alpha_value(const Json& v, const std::string& what) const {
    if (!v.is_number()) cfg_fail(what + " is a JSON " + v.type_name() + ", expected a number");
    const double a = v.as_number();
    if (!std::isfinite(a) || std::fabs(a) > kMaxAlpha)
      cfg_fail(what + " = " + v.number_lexeme() + " is outside [-1e6, 1e6]");
    return a;
  }

  // string -> {s}, regex=true; list of strings -> list; null/absent -> {}.
  std::vector<std::string> module_list(const Json& cfg, const char* key, bool& is_regex) const {
    is_regex = false;
    const Json* v = field(cfg, key);
    if (!v || v->is_null()) return {};
    if (v->is_string()) {
      is_regex = true;
      return {v->as_string()};
    }
    if (!v->is_array()) cfg_fail(std::string("\"") + key + "\" is a JSON " + v->type_name() + ", expected a string or a list");
    std::vector<std::string> out;
    for (size_t i = 0; i < v->size(); ++i) {
      if (!v->at(i).is_string()) cfg_fail(std::string("\"") + key + "\"[" + std::to_string(i) + "] is not a string");
      out.push_back(v->at(i).as_string());
    }
    return out;
  }

  // A field that must be absent/null/false/empty: anything else names the unsupported feature.
  void require_unset(const Json& cfg, const char* key, const std::string& feature) const {
    const Json* v = field(cfg, key);
    if (!v || v->is_null()) return;
    if (v->is_bool() && !v->as_bool()) return;
    if ((v->is_array() || v->is_object()) && v->size() == 0) return;
    cfg_fail(std::string("\"") + key + "\" is set: " + feature + " is not supported");
  }

  void parse_config(const Json& cfg) {
    PeftConfig& c = ad.config_;
    // Fields this loader interprets or checks.
    static const std::set<std::string> kInterpreted = {
        "peft_type", "r", "lora_alpha", "use_rslora", "use_dora", "fan_in_fan_out", "base_model_name_or_path",
        "target_modules", "exclude_modules", "rank_pattern", "alpha_pattern", "bias", "modules_to_save",
        "lora_bias", "layers_to_transform", "layers_pattern", "layer_replication", "trainable_token_indices",
        "target_parameters", "use_qalora", "alora_invocation_tokens", "arrow_config"};
    // LoraConfig fields that only matter for training/initialisation or bookkeeping.
    static const std::set<std::string> kHarmless = {
        "task_type", "inference_mode", "lora_dropout", "revision", "init_lora_weights", "megatron_config",
        "megatron_core", "loftq_config", "eva_config", "corda_config", "runtime_config", "peft_version",
        "auto_mapping", "qalora_group_size", "ensure_weight_tying"};

    const Json* pt = field(cfg, "peft_type");
    if (!pt) cfg_fail("missing \"peft_type\"");
    if (!pt->is_string()) cfg_fail(std::string("\"peft_type\" is a JSON ") + pt->type_name() + ", expected a string");
    c.peft_type = pt->as_string();
    if (c.peft_type != "LORA") cfg_fail("unsupported peft_type " + c.peft_type + " (only LORA adapters are supported)");

    c.use_dora = opt_bool(cfg, "use_dora", false);
    if (c.use_dora) cfg_fail("DoRA adapters are not supported (\"use_dora\": true)");
    c.fan_in_fan_out = opt_bool(cfg, "fan_in_fan_out", false);
    if (c.fan_in_fan_out)
      cfg_fail("\"fan_in_fan_out\": true is not supported (Conv1D-style transposed weights; Gemma uses nn.Linear)");
    c.use_rslora = opt_bool(cfg, "use_rslora", false);

    const Json* r = field(cfg, "r");
    if (!r) cfg_fail("missing \"r\"");
    c.r = rank_value(*r, "\"r\"");
    const Json* alpha = field(cfg, "lora_alpha");
    if (!alpha) cfg_fail("missing \"lora_alpha\"");
    c.lora_alpha = alpha_value(*alpha, "\"lora_alpha\"");

    if (const Json* b = field(cfg, "base_model_name_or_path"); b && b->is_string()) c.base_model = b->as_string();

    c.target_modules = module_list(cfg, "target_modules", c.target_modules_is_regex);
    c.exclude_modules = module_list(cfg, "exclude_modules", c.exclude_modules_is_regex);

    if (const Json* rp = field(cfg, "rank_pattern"); rp && !rp->is_null()) {
      if (!rp->is_object()) cfg_fail(std::string("\"rank_pattern\" is a JSON ") + rp->type_name() + ", expected an object");
      if (rp->size() > kMaxPatternKeys) cfg_fail("rank_pattern has more than " + std::to_string(kMaxPatternKeys) + " keys");
      for (const auto& [k, v] : rp->as_object()) {
        c.rank_pattern[k] = rank_value(v, "rank_pattern[\"" + shown(k) + "\"]");
        c.rank_pattern_order.push_back(k);
        rank_res.push_back(PeftRegex::compile_pattern_key(k, config_path + ": rank_pattern key"));
      }
    }
    if (const Json* ap = field(cfg, "alpha_pattern"); ap && !ap->is_null()) {
      if (!ap->is_object()) cfg_fail(std::string("\"alpha_pattern\" is a JSON ") + ap->type_name() + ", expected an object");
      if (ap->size() > kMaxPatternKeys) cfg_fail("alpha_pattern has more than " + std::to_string(kMaxPatternKeys) + " keys");
      for (const auto& [k, v] : ap->as_object()) {
        c.alpha_pattern[k] = alpha_value(v, "alpha_pattern[\"" + shown(k) + "\"]");
        c.alpha_pattern_order.push_back(k);
        alpha_res.push_back(PeftRegex::compile_pattern_key(k, config_path + ": alpha_pattern key"));
      }
    }

    if (const Json* b = field(cfg, "bias"); b && !b->is_null()) {
      if (!b->is_string()) cfg_fail(std::string("\"bias\" is a JSON ") + b->type_name() + ", expected a string");
      if (b->as_string() != "none")
        cfg_fail("\"bias\": \"" + b->as_string() + "\": lora bias tensors unsupported (only \"none\")");
    }
    if (const Json* m = field(cfg, "modules_to_save"); m && !m->is_null()) {
      if (!m->is_array()) cfg_fail(std::string("\"modules_to_save\" is a JSON ") + m->type_name() + ", expected a list or null");
      if (m->size() != 0) {
        std::string names;
        for (size_t i = 0; i < m->size(); ++i)
          names += (i ? ", " : "") + (m->at(i).is_string() ? m->at(i).as_string() : std::string("?"));
        cfg_fail("modules_to_save is not supported (fully trained copies of modules: " + names + ")");
      }
    }
    if (opt_bool(cfg, "lora_bias", false)) cfg_fail("\"lora_bias\": true: lora bias tensors unsupported");
    if (opt_bool(cfg, "use_qalora", false)) cfg_fail("\"use_qalora\": true: QA-LoRA adapters are not supported");
    require_unset(cfg, "layer_replication", "layer replication");
    require_unset(cfg, "trainable_token_indices", "trainable tokens");
    require_unset(cfg, "target_parameters", "LoRA on parameters (target_parameters)");
    require_unset(cfg, "alora_invocation_tokens", "activated LoRA (aLoRA)");
    require_unset(cfg, "arrow_config", "Arrow routing");

    if (const Json* l = field(cfg, "layers_to_transform"); l && !l->is_null()) {
      if (integral(*l)) {
        c.layers_to_transform.push_back(static_cast<int64_t>(l->as_number()));
      } else if (l->is_array()) {
        for (size_t i = 0; i < l->size(); ++i) {
          if (!integral(l->at(i))) cfg_fail("layers_to_transform[" + std::to_string(i) + "] is not an integer");
          c.layers_to_transform.push_back(static_cast<int64_t>(l->at(i).as_number()));
        }
      } else {
        cfg_fail(std::string("\"layers_to_transform\" is a JSON ") + l->type_name() + ", expected an integer or a list");
      }
    }

    for (const auto& [k, v] : cfg.as_object()) {
      (void)v;
      if (kInterpreted.count(k) || kHarmless.count(k)) continue;
      if (k.rfind("megatron_", 0) == 0) continue;
      c.unknown_keys.push_back(k);
      warn(config_path + ": unknown key \"" + k + "\" (not interpreted)");
    }
  }

  // ---- module selection (PEFT's check_target_module_exists) -----------------

  bool match(const PeftRegex& re, const std::string& module) {
    const bool m = re.matches(module, &match_steps);
    if (match_steps > kMaxMatchSteps)
      cfg_fail("matching its regular expressions against the adapter's modules takes more than " +
               std::to_string(kMaxMatchSteps) + " steps; simplify target_modules / rank_pattern / alpha_pattern");
    return m;
  }
  // PEFT's get_pattern_key over precompiled keys: index of the first key that matches, or -1.
  int pattern_key(const std::vector<PeftRegex>& res, const std::string& module) {
    for (size_t i = 0; i < res.size(); ++i)
      if (match(res[i], module)) return static_cast<int>(i);
    return -1;
  }

  // PEFT: a string is re.fullmatch'ed against the module name; a list matches a
  // name equal to an entry or ending in "." + entry.
  bool module_selected(const std::vector<std::string>& spec, bool is_regex, const std::string& module,
                       const PeftRegex* re) {
    if (is_regex) {
      if (!spec.empty() && spec[0] == "all-linear") return true;
      return re ? match(*re, module) : true;
    }
    for (const auto& t : spec) {
      if (module == t) return true;
      if (module.size() > t.size() && module.compare(module.size() - t.size(), t.size(), t) == 0 &&
          module[module.size() - t.size() - 1] == '.')
        return true;
    }
    return false;
  }

  // ---- tensor names -------------------------------------------------------

  struct Parsed {
    int layer = 0;
    LoraTarget target = LoraTarget::COUNT;
    bool is_b = false;
    std::string adapter_name;  // "" when PEFT stripped it (the normal case)
    std::string module;        // module name in the base model, e.g. model.language_model.layers.3.self_attn.q_proj
  };

  static bool eat(std::string_view& s, std::string_view lit) {
    if (s.substr(0, lit.size()) != lit) return false;
    s.remove_prefix(lit.size());
    return true;
  }

  static bool parse_name(const std::string& name, Parsed& p) {
    std::string_view s(name);
    if (!eat(s, "base_model.model.")) return false;
    const std::string_view module_start = s;
    if (!eat(s, "model.language_model.layers.") && !eat(s, "model.layers.")) return false;
    size_t nd = 0;
    int64_t layer = 0;
    while (nd < s.size() && s[nd] >= '0' && s[nd] <= '9') {
      layer = layer * 10 + (s[nd] - '0');
      if (++nd > 6) return false;
    }
    if (nd == 0 || (nd > 1 && s[0] == '0')) return false;
    p.layer = static_cast<int>(layer);
    s.remove_prefix(nd);
    if (!eat(s, ".")) return false;
    static const std::pair<const char*, LoraTarget> kMods[] = {
        {"self_attn.q_proj", LoraTarget::Q},  {"self_attn.k_proj", LoraTarget::K},
        {"self_attn.v_proj", LoraTarget::V},  {"self_attn.o_proj", LoraTarget::O},
        {"mlp.gate_proj", LoraTarget::GATE}, {"mlp.up_proj", LoraTarget::UP},
        {"mlp.down_proj", LoraTarget::DOWN}};
    p.target = LoraTarget::COUNT;
    for (const auto& [m, t] : kMods) {
      if (eat(s, m)) {
        p.target = t;
        break;
      }
    }
    if (p.target == LoraTarget::COUNT) return false;
    p.module = std::string(module_start.substr(0, module_start.size() - s.size()));
    if (eat(s, ".lora_A")) p.is_b = false;
    else if (eat(s, ".lora_B")) p.is_b = true;
    else return false;
    if (s == ".weight") return true;
    // Optional adapter-name segment: ".<name>.weight".
    if (!eat(s, ".")) return false;
    const size_t dot = s.find('.');
    if (dot == std::string_view::npos || dot == 0 || s.substr(dot) != ".weight") return false;
    const std::string_view an = s.substr(0, dot);
    for (char ch : an)
      if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
        return false;
    if (an == "weight") return false;
    p.adapter_name = std::string(an);
    return true;
  }

  static std::string name_hint(const std::string& name) {
    if (name.find("lora_magnitude_vector") != std::string::npos) return " (a DoRA magnitude vector; DoRA is not supported)";
    if (name.find("lora_embedding_") != std::string::npos) return " (a LoRA on an embedding; not supported)";
    if (name.find("modules_to_save") != std::string::npos) return " (a modules_to_save copy; not supported)";
    if (name.find("trainable_tokens") != std::string::npos) return " (trainable tokens; not supported)";
    if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0) return " (a bias; LoRA bias tensors unsupported)";
    if (name.find("vision") != std::string::npos || name.find("audio") != std::string::npos)
      return " (outside the language model)";
    return "";
  }

  // ---- adapter_model.safetensors -------------------------------------------

  void load_weights() {
    const PeftConfig& c = ad.config_;
    auto st = SafetensorsFile::open(weights_path, code::ADAPTER_INVALID);

    std::optional<PeftRegex> target_re, exclude_re;
    if (c.target_modules_is_regex && c.target_modules[0] != "all-linear")
      target_re = PeftRegex::compile(c.target_modules[0], config_path + ": target_modules");
    if (c.exclude_modules_is_regex)
      exclude_re = PeftRegex::compile(c.exclude_modules[0], config_path + ": exclude_modules");
    auto ptr = [](const std::optional<PeftRegex>& r) { return r ? &*r : nullptr; };

    struct Slot {
      const SafetensorsFile::Tensor* a = nullptr;
      const SafetensorsFile::Tensor* b = nullptr;
      std::string module;
    };
    std::map<std::pair<int, int>, Slot> slots;
    std::string adapter_name;
    bool have_name = false;
    size_t ignored = 0;
    std::set<std::string> ignored_modules;

    for (const auto& t : st->tensors()) {
      Parsed p;
      if (!parse_name(t.name, p))
        st_fail("tensor \"" + t.name + "\" is not a LoRA weight this engine applies" + name_hint(t.name) +
                "; expected base_model.model.model.language_model.layers.{i}.{self_attn|mlp}."
                "{q|k|v|o|gate|up|down}_proj.lora_{A|B}.weight");
      if (have_name && p.adapter_name != adapter_name)
        st_fail("tensor \"" + t.name + "\" names adapter \"" + p.adapter_name + "\" but other tensors name \"" +
                adapter_name + "\" (one adapter per file)");
      adapter_name = p.adapter_name;
      have_name = true;

      // Modules PEFT would not create for this config get no delta (PEFT ignores such keys on load).
      std::string why;
      if (!c.target_modules.empty() &&
          !module_selected(c.target_modules, c.target_modules_is_regex, p.module, ptr(target_re)))
        why = "not matched by target_modules";
      else if (!c.exclude_modules.empty() &&
               module_selected(c.exclude_modules, c.exclude_modules_is_regex, p.module, ptr(exclude_re)))
        why = "matched by exclude_modules";
      else if (!c.layers_to_transform.empty() &&
               std::find(c.layers_to_transform.begin(), c.layers_to_transform.end(), p.layer) ==
                   c.layers_to_transform.end())
        why = "layer not in layers_to_transform";
      if (!why.empty()) {
        ++ignored;
        if (ignored_modules.insert(p.module + ": " + why).second)
          warn(weights_path + ": ignoring the LoRA of " + p.module + " (" + why + " in adapter_config.json)");
        continue;
      }

      Slot& slot = slots[{p.layer, static_cast<int>(p.target)}];
      const SafetensorsFile::Tensor*& dst = p.is_b ? slot.b : slot.a;
      if (dst) st_fail("tensors \"" + dst->name + "\" and \"" + t.name + "\" are the same LoRA matrix");
      dst = &t;
      slot.module = p.module;
    }

    if (slots.empty() && ignored > 0)
      st_fail("none of its " + std::to_string(ignored) +
              " LoRA tensors belongs to a module selected by adapter_config.json (target_modules / exclude_modules / "
              "layers_to_transform)");

    for (const auto& [key, slot] : slots) {
      if (!slot.b) st_fail("tensor \"" + slot.a->name + "\" has no matching lora_B");
      if (!slot.a) st_fail("tensor \"" + slot.b->name + "\" has no matching lora_A");
      const auto& A = *slot.a;
      const auto& B = *slot.b;
      for (const auto* t : {&A, &B}) {
        if (t->dtype != "F32" && t->dtype != "F16" && t->dtype != "BF16" && t->dtype != "F64")
          st_fail("tensor \"" + t->name + "\" has dtype " + t->dtype + "; LoRA weights must be F32, F16 or BF16");
        if (t->shape.size() != 2)
          st_fail("tensor \"" + t->name + "\" has " + std::to_string(t->shape.size()) + " dimensions, expected 2");
        if (t->shape[0] <= 0 || t->shape[1] <= 0) st_fail("tensor \"" + t->name + "\" is empty");
      }
      const int64_t rank = A.shape[0], in = A.shape[1], out = B.shape[0];
      if (B.shape[1] != rank)
        st_fail("tensor \"" + A.name + "\" has rank " + std::to_string(rank) + " ([r, in] = [" +
                std::to_string(rank) + ", " + std::to_string(in) + "]) but \"" + B.name + "\" has rank " +
                std::to_string(B.shape[1]) + " ([out, r] = [" + std::to_string(out) + ", " +
                std::to_string(B.shape[1]) + "])");

      int64_t r_mod = c.r;
      double alpha_mod = c.lora_alpha;
      std::string r_src = "r";
      if (const int k = pattern_key(rank_res, slot.module); k >= 0) {
        r_mod = c.rank_pattern.at(c.rank_pattern_order[k]);
        r_src = "rank_pattern[\"" + c.rank_pattern_order[k] + "\"]";
      }
      if (const int k = pattern_key(alpha_res, slot.module); k >= 0) alpha_mod = c.alpha_pattern.at(c.alpha_pattern_order[k]);
      if (rank != r_mod)
        st_fail("tensors \"" + A.name + "\" / \"" + B.name + "\" have rank " + std::to_string(rank) + " but " +
                config_path + " gives " + r_src + " = " + std::to_string(r_mod) + " for module " + slot.module);

      LoraMatrixPair pair;
      pair.rank = rank;
      pair.in = in;
      pair.out = out;
      pair.a = st->to_f32(A);
      pair.b = st->to_f32(B);
      // Non-finite weights (or F64 values beyond float's range) would surface later as a NaN hidden
      // state blamed on the caller; they are the file's fault.
      for (const auto* t : {&A, &B}) {
        const std::vector<float>& v = t == &A ? pair.a : pair.b;
        for (size_t i = 0; i < v.size(); ++i)
          if (!std::isfinite(v[i]))
            st_fail("tensor \"" + t->name + "\" holds a non-finite value at element " + std::to_string(i) +
                    " (NaN, infinity, or beyond float32's range)");
      }
      const double denom = c.use_rslora ? std::sqrt(static_cast<double>(rank)) : static_cast<double>(rank);
      pair.scale = static_cast<float>(alpha_mod / denom);
      if (!std::isfinite(pair.scale)) cfg_fail("the LoRA scale of " + slot.module + " is not finite");
      ad.pairs_[key] = std::move(pair);
    }
  }
};

std::unique_ptr<LoraAdapter> LoraAdapter::load_peft_dir(const std::string& dir_in) {
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  struct stat st;
  if (dir.empty() || ::stat(dir.c_str(), &st) != 0)
    throw Error(code::IO, "adapter directory " + dir_in + " does not exist");
  if (!S_ISDIR(st.st_mode)) throw Error(code::IO, "adapter path " + dir_in + " is not a directory");

  std::unique_ptr<LoraAdapter> ad(new LoraAdapter());
  ad->dir_ = dir;
  LoraLoader L{*ad, dir + "/adapter_config.json", dir + "/adapter_model.safetensors", {}, {}, 0};

  const Json cfg = L.read_config();
  L.parse_config(cfg);

  if (!LoraLoader::is_file(L.weights_path)) {
    std::string hint;
    if (LoraLoader::is_file(dir + "/adapter_model.bin"))
      hint = " (the directory has adapter_model.bin, a pickle; re-save the adapter with safe_serialization=True)";
    throw Error(code::IO, L.weights_path + ": missing; a PEFT adapter directory needs adapter_model.safetensors" + hint);
  }
  L.load_weights();
  return ad;
}

}  // namespace nla
