// llama_ref: a small CLI over llama.cpp's public C API (v0.5.0, prebuilt libs), used as the ground truth of
// the differential tests. It only CALLS llama.cpp. Built by scripts/setup-reference.sh.
//
//   llama_ref dump     --model M.gguf [--lora L.gguf [--lora-scale S]] --tokens 2,17,99
//                      --tensors l_out-0,attn_norm-0 [--stop-after NAME] [--threads N] [--all-outputs]
//                      [--mmap] [--no-repack] [--list] --out F
//        f32 KV cache, flash attention off, one ubatch holding all tokens. Writes F as:
//        u64 LE N | N bytes JSON {"tensors":{"name":{"ne":[4 dims],"offset":bytes,"type":"f32"}}} | raw f32.
//        `offset` counts from the end of the header. A name that occurs on several graph nodes is stored
//        once per occurrence: "norm-0", "norm-0#2", ... --list prints every node name seen as JSON to stdout.
//        --all-outputs requests outputs for every token (otherwise only the last token, so the last block's
//        tensors after llama.cpp's output-row selection may hold one token).
//   llama_ref decode   --model M.gguf [--lora L.gguf [--lora-scale S]] --tokens PROMPT --steps N
//                      [--force T1,T2,...] [--parallel K] [--default-ctx] [--threads N] [--out F]
//        Prefills the prompt, then decodes N tokens one at a time through the KV cache: greedy (argmax) or,
//        with --force, the given N tokens (teacher forcing). f32 KV cache and flash attention off unless
//        --default-ctx (llama.cpp's defaults, for timing). --parallel K runs K copies of the prompt as K
//        sequences decoded together (one batch of K tokens per step). --out writes sequence 0's logits in the
//        dump format: "logits-0" after the prefill, "logits-i" after step i, each ne [n_vocab, 1, 1, 1].
//        Prints {"tokens":[...seq 0's N tokens],"prefill_ms":..,"decode_ms":..,"steps":N,"parallel":K}.
//   llama_ref tokenize --model V.gguf [--no-bos] [--no-special] --in strings.jsonl --out ids.jsonl
//        one JSON string per input line -> one JSON array of ids per output line (vocab-only load).
//   llama_ref quantize --in F.gguf --out Q.gguf --type q4_k_m|q4_k_s|q5_k_m|q5_k_s|q6_k|q8_0|q4_0|q4_1|
//                      q5_0|q5_1|f16|bf16|f32 [--threads N]
//   llama_ref time     --model M.gguf [--lora L.gguf [--lora-scale S]] --tokens ... [--stop-after NAME]
//                      [--threads N] [--repeat R] [--warmup W] [--f32-kv] [--mmap|--no-mmap]
//        Prints {"load_ms":..,"decode_ms":[..],"median_ms":..}. Uses llama.cpp's DEFAULT numerics (f16 KV
//        cache, flash attention auto) unless --f32-kv, which selects the dump settings (f32 KV, FA off).
//        In every mode n_ctx is sized to the prompt (not the model's 131072), so the KV cache stays small.
//
// Common: --verbose shows llama.cpp's log (silenced otherwise). Env LLAMA_REF_CPU_VARIANT=haswell|zen4|...
// forces one libggml-cpu-<variant>.so instead of the best-scoring one. Errors: message on stderr, exit 1.
#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using Err = std::runtime_error;

// ------------------------------------------------------------------------------------------- arguments
struct Args {
    std::string cmd;
    std::map<std::string, std::string> kv;
    std::set<std::string> flags;

    bool has(const std::string & k) const { return kv.count(k) || flags.count(k); }
    std::string get(const std::string & k, const std::string & def = "") const {
        auto it = kv.find(k);
        return it == kv.end() ? def : it->second;
    }
    std::string need(const std::string & k) const {
        auto it = kv.find(k);
        if (it == kv.end() || it->second.empty()) throw Err("missing --" + k);
        return it->second;
    }
    long num(const std::string & k, long def) const {
        auto it = kv.find(k);
        if (it == kv.end()) return def;
        char * end = nullptr;
        long v = strtol(it->second.c_str(), &end, 10);
        if (!end || *end) throw Err("--" + k + " expects an integer, got '" + it->second + "'");
        return v;
    }
};

// Options that take no value.
const std::set<std::string> kFlags = {"no-bos", "no-special", "f32-kv", "verbose", "mmap", "no-mmap",
                                      "no-repack", "all-outputs", "list", "default-ctx"};

Args parse_args(int argc, char ** argv) {
    Args a;
    if (argc < 2) throw Err("usage: llama_ref dump|tokenize|quantize|time --help");
    a.cmd = argv[1];
    for (int i = 2; i < argc; ++i) {
        std::string s = argv[i];
        if (s.rfind("--", 0) != 0) throw Err("unexpected argument '" + s + "'");
        s = s.substr(2);
        if (kFlags.count(s)) { a.flags.insert(s); continue; }
        if (i + 1 >= argc) throw Err("--" + s + " needs a value");
        a.kv[s] = argv[++i];
    }
    return a;
}

std::vector<std::string> split(const std::string & s, char sep) {
    std::vector<std::string> out;
    std::string cur;
    std::istringstream is(s);
    while (std::getline(is, cur, sep)) if (!cur.empty()) out.push_back(cur);
    return out;
}

std::vector<llama_token> parse_tokens(const std::string & s) {
    std::vector<llama_token> t;
    for (auto & p : split(s, ',')) t.push_back((llama_token) std::stol(p));
    if (t.empty()) throw Err("--tokens is empty");
    return t;
}

// ------------------------------------------------------------------------------------------- backends / logs
bool g_verbose = false;

void log_cb(ggml_log_level, const char * text, void *) {
    if (g_verbose) fputs(text, stderr);
}

// The CPU backend is a separate dlopen()ed library (libggml-cpu-<variant>.so) next to libggml. ggml's default
// search looks in the executable's directory and the cwd, so we point it at libggml's own directory.
void load_backends() {
    Dl_info info{};
    std::string dir;
    if (dladdr((void *) &ggml_backend_load_all_from_path, &info) && info.dli_fname) {
        dir = info.dli_fname;
        dir = dir.substr(0, dir.find_last_of('/'));
    }
    if (const char * v = getenv("LLAMA_REF_CPU_VARIANT")) {
        std::string path = dir + "/libggml-cpu-" + v + ".so";
        if (!ggml_backend_load(path.c_str())) throw Err("cannot load CPU backend " + path);
    } else {
        ggml_backend_load_all_from_path(dir.empty() ? nullptr : dir.c_str());
    }
    if (!ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU))
        throw Err("no ggml CPU backend found (looked in '" + dir + "')");
    llama_backend_init();
}

// ------------------------------------------------------------------------------------------- model / context
struct Session {
    llama_model * model = nullptr;
    llama_context * ctx = nullptr;
    llama_adapter_lora * lora = nullptr;
    ~Session() {
        if (ctx) llama_free(ctx);
        if (lora) llama_adapter_lora_free(lora);
        if (model) llama_model_free(model);
    }
};

int default_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

void load_model(Session & s, const Args & a, bool mmap_default) {
    llama_model_params mp = llama_model_default_params();
    bool use_mmap = a.has("mmap") ? true : a.has("no-mmap") ? false : mmap_default;
    if (!use_mmap) mp.load_mode = LLAMA_LOAD_MODE_NONE;   // read into memory: later rewrites of the file are harmless
    if (a.has("no-repack")) mp.use_extra_bufts = false;   // no CPU weight repacking (q4_0 -> interleaved)
    std::string path = a.need("model");
    s.model = llama_model_load_from_file(path.c_str(), mp);
    if (!s.model) throw Err("failed to load model " + path + " (rerun with --verbose)");
    if (a.has("lora")) {
        std::string lp = a.need("lora");
        s.lora = llama_adapter_lora_init(s.model, lp.c_str());
        if (!s.lora) throw Err("failed to load LoRA adapter " + lp + " (rerun with --verbose)");
    }
}

void make_context(Session & s, const Args & a, llama_context_params cp, uint32_t n_tokens) {
    cp.n_ctx = std::max<uint32_t>(n_tokens, 256);  // llama.cpp pads to 256 anyway
    cp.n_batch = cp.n_ubatch = std::max<uint32_t>(n_tokens, 1);
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = (int32_t) a.num("threads", default_threads());
    cp.embeddings = false;
    cp.no_perf = true;
    s.ctx = llama_init_from_model(s.model, cp);
    if (!s.ctx) throw Err("failed to create llama context (rerun with --verbose)");
    if (s.lora) {
        float scale = std::stof(a.get("lora-scale", "1"));
        if (llama_set_adapters_lora(s.ctx, &s.lora, 1, &scale) != 0) throw Err("llama_set_adapters_lora failed");
    }
}

// One sequence, positions 0..n-1; output for the last token (or all with all_outputs).
struct Batch {
    llama_batch b;
    Batch(const std::vector<llama_token> & toks, bool all_outputs) {
        b = llama_batch_init((int32_t) toks.size(), 0, 1);
        b.n_tokens = (int32_t) toks.size();
        for (size_t i = 0; i < toks.size(); ++i) {
            b.token[i] = toks[i];
            b.pos[i] = (llama_pos) i;
            b.n_seq_id[i] = 1;
            b.seq_id[i][0] = 0;
            b.logits[i] = all_outputs || i + 1 == toks.size();
        }
    }
    ~Batch() { llama_batch_free(b); }
};

// ------------------------------------------------------------------------------------------- tensor capture
struct Captured {
    std::string name;
    int64_t ne[4];
    std::string type;
    std::vector<float> data;
};

struct Capture {
    std::set<std::string> wanted;
    std::set<std::string> wanted_base;                  // wanted names without a "#k" occurrence suffix
    std::string stop_after;
    bool list = false;
    bool stopped = false;
    std::map<std::string, int> seen;                    // name -> occurrences so far
    std::vector<std::pair<std::string, std::vector<int64_t>>> names;  // for --list
    std::vector<Captured> out;
};

// Copies any f32/f16/bf16/i32 tensor (possibly a strided view, possibly in a device buffer) to host f32.
void tensor_to_f32(const ggml_tensor * t, std::vector<float> & dst) {
    const size_t span = ggml_nbytes(t);  // for a view: the byte span covering all strided elements
    std::vector<uint8_t> raw(span);
    ggml_backend_tensor_get(t, raw.data(), 0, span);
    dst.resize((size_t) ggml_nelements(t));
    size_t k = 0;
    for (int64_t i3 = 0; i3 < t->ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < t->ne[2]; ++i2)
            for (int64_t i1 = 0; i1 < t->ne[1]; ++i1)
                for (int64_t i0 = 0; i0 < t->ne[0]; ++i0) {
                    const uint8_t * p = raw.data() + i0 * t->nb[0] + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
                    float v;
                    switch (t->type) {
                        case GGML_TYPE_F32: memcpy(&v, p, 4); break;
                        case GGML_TYPE_F16: v = ggml_fp16_to_fp32(*(const ggml_fp16_t *) p); break;
                        case GGML_TYPE_BF16: v = ggml_bf16_to_fp32(*(const ggml_bf16_t *) p); break;
                        case GGML_TYPE_I32: v = (float) *(const int32_t *) p; break;
                        default: throw Err(std::string("cannot convert tensor '") + t->name + "' of type " +
                                           ggml_type_name(t->type) + " to f32");
                    }
                    dst[k++] = v;
                }
}

bool eval_cb(ggml_tensor * t, bool ask, void * ud) {
    auto * c = (Capture *) ud;
    const std::string name = t->name;
    if (ask) return c->list || c->wanted_base.count(name) || name == c->stop_after;
    if (c->stopped) return false;
    int n = ++c->seen[name];
    const std::string key = n == 1 ? name : name + "#" + std::to_string(n);
    if (c->list) c->names.push_back({key, {t->ne[0], t->ne[1], t->ne[2], t->ne[3]}});
    if (c->wanted.count(key)) {
        Captured cap;
        cap.name = key;
        memcpy(cap.ne, t->ne, sizeof cap.ne);
        cap.type = ggml_type_name(t->type);
        tensor_to_f32(t, cap.data);
        c->out.push_back(std::move(cap));
    }
    if (!c->stop_after.empty() && name == c->stop_after) {
        c->stopped = true;  // return false: the scheduler stops this split; the abort callback stops the rest
        return false;
    }
    return true;
}

bool abort_cb(void * ud) { return ((Capture *) ud)->stopped; }

std::string json_escape(const std::string & s) {
    std::string o;
    for (unsigned char ch : s) {
        if (ch == '"' || ch == '\\') { o += '\\'; o += (char) ch; }
        else if (ch < 0x20) { char b[8]; snprintf(b, sizeof b, "\\u%04x", ch); o += b; }
        else o += (char) ch;
    }
    return o;
}

// ------------------------------------------------------------------------------------------- dump
int cmd_dump(const Args & a) {
    const auto toks = parse_tokens(a.need("tokens"));
    const std::string out_path = a.need("out");
    Capture cap;
    for (auto & n : split(a.get("tensors"), ',')) {
        cap.wanted.insert(n);
        cap.wanted_base.insert(n.substr(0, n.find('#')));
    }
    cap.stop_after = a.get("stop-after");
    cap.list = a.has("list");
    if (cap.wanted.empty() && !cap.list) throw Err("missing --tensors");

    Session s;
    load_model(s, a, /*mmap_default=*/false);
    llama_context_params cp = llama_context_default_params();
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.cb_eval = eval_cb;
    cp.cb_eval_user_data = &cap;
    cp.abort_callback = abort_cb;
    cp.abort_callback_data = &cap;
    make_context(s, a, cp, (uint32_t) toks.size());

    Batch batch(toks, a.has("all-outputs"));
    const int rc = llama_decode(s.ctx, batch.b);
    // rc 2 = aborted, which is what --stop-after causes; anything else non-zero is a real failure
    if (rc != 0 && !(cap.stopped && rc == 2)) throw Err("llama_decode failed with " + std::to_string(rc));
    if (!cap.stop_after.empty() && !cap.stopped)
        throw Err("--stop-after tensor '" + cap.stop_after + "' never appeared in the graph");

    std::vector<std::string> missing;
    for (auto & w : cap.wanted) {
        bool found = std::any_of(cap.out.begin(), cap.out.end(), [&](const Captured & c) { return c.name == w; });
        if (!found) missing.push_back(w);
    }
    if (!missing.empty()) {
        std::string m;
        for (auto & x : missing) m += (m.empty() ? "" : ",") + x;
        throw Err("tensors not seen in the graph (before the stop point): " + m + " (try --list)");
    }

    std::string hdr = "{\"tensors\":{";
    size_t off = 0;
    for (size_t i = 0; i < cap.out.size(); ++i) {
        auto & c = cap.out[i];
        char buf[256];
        snprintf(buf, sizeof buf, "\":{\"ne\":[%lld,%lld,%lld,%lld],\"offset\":%zu,\"type\":\"%s\"}",
                 (long long) c.ne[0], (long long) c.ne[1], (long long) c.ne[2], (long long) c.ne[3], off,
                 c.type.c_str());
        hdr += (i ? ",\"" : "\"") + json_escape(c.name) + buf;
        off += c.data.size() * sizeof(float);
    }
    hdr += "}}";
    std::ofstream f(out_path, std::ios::binary);
    if (!f) throw Err("cannot write " + out_path);
    uint64_t n = hdr.size();
    uint8_t le[8];
    for (int i = 0; i < 8; ++i) le[i] = (uint8_t) (n >> (8 * i));
    f.write((const char *) le, 8);
    f.write(hdr.data(), (std::streamsize) hdr.size());
    for (auto & c : cap.out) f.write((const char *) c.data.data(), (std::streamsize) (c.data.size() * sizeof(float)));
    if (!f) throw Err("write to " + out_path + " failed");

    if (cap.list) {
        printf("[");
        for (size_t i = 0; i < cap.names.size(); ++i) {
            auto & ne = cap.names[i].second;
            printf("%s{\"name\":\"%s\",\"ne\":[%lld,%lld,%lld,%lld]}", i ? "," : "", json_escape(cap.names[i].first).c_str(),
                   (long long) ne[0], (long long) ne[1], (long long) ne[2], (long long) ne[3]);
        }
        printf("]\n");
    }
    return 0;
}

// ------------------------------------------------------------------------------------------- decode
double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void write_dump(const std::string & out_path, const std::vector<std::pair<std::string, std::vector<float>>> & tensors) {
    std::string hdr = "{\"tensors\":{";
    size_t off = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
        char buf[256];
        snprintf(buf, sizeof buf, "\":{\"ne\":[%zu,1,1,1],\"offset\":%zu,\"type\":\"f32\"}", tensors[i].second.size(), off);
        hdr += (i ? ",\"" : "\"") + json_escape(tensors[i].first) + buf;
        off += tensors[i].second.size() * sizeof(float);
    }
    hdr += "}}";
    std::ofstream f(out_path, std::ios::binary);
    if (!f) throw Err("cannot write " + out_path);
    uint64_t n = hdr.size();
    uint8_t le[8];
    for (int i = 0; i < 8; ++i) le[i] = (uint8_t) (n >> (8 * i));
    f.write((const char *) le, 8);
    f.write(hdr.data(), (std::streamsize) hdr.size());
    for (auto & t : tensors) f.write((const char *) t.second.data(), (std::streamsize) (t.second.size() * sizeof(float)));
    if (!f) throw Err("write to " + out_path + " failed");
}

int cmd_decode(const Args & a) {
    const auto prompt = parse_tokens(a.need("tokens"));
    const long steps = a.num("steps", 0), K = a.num("parallel", 1);
    if (steps < 0 || K < 1) throw Err("--steps must be >= 0 and --parallel >= 1");
    std::vector<llama_token> forced;
    if (a.has("force")) {
        forced = parse_tokens(a.need("force"));
        if ((long) forced.size() != steps) throw Err("--force needs exactly --steps tokens");
    }
    Session s;
    load_model(s, a, /*mmap_default=*/true);
    llama_context_params cp = llama_context_default_params();
    if (!a.has("default-ctx")) {
        cp.type_k = cp.type_v = GGML_TYPE_F32;
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    }
    const uint32_t per_seq = (uint32_t) (prompt.size() + steps + 1);
    cp.n_seq_max = (uint32_t) K;
    cp.kv_unified = true;  // one cache for the K sequences (sized K × their length)
    cp.n_ctx = std::max<uint32_t>((uint32_t) K * per_seq, 256);
    cp.n_batch = cp.n_ubatch = std::max<uint32_t>((uint32_t) (K * prompt.size()), (uint32_t) K);
    cp.n_threads = cp.n_threads_batch = (int32_t) a.num("threads", default_threads());
    cp.embeddings = false;
    cp.no_perf = true;
    s.ctx = llama_init_from_model(s.model, cp);
    if (!s.ctx) throw Err("failed to create llama context (rerun with --verbose)");
    if (s.lora) {
        float scale = std::stof(a.get("lora-scale", "1"));
        if (llama_set_adapters_lora(s.ctx, &s.lora, 1, &scale) != 0) throw Err("llama_set_adapters_lora failed");
    }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(s.model));
    std::vector<std::pair<std::string, std::vector<float>>> dumped;
    auto keep_logits = [&](int idx, int step) {
        if (!a.has("out")) return;
        const float * l = llama_get_logits_ith(s.ctx, idx);
        if (!l) throw Err("no logits for output " + std::to_string(idx));
        dumped.emplace_back("logits-" + std::to_string(step), std::vector<float>(l, l + n_vocab));
    };
    auto argmax = [&](int idx) {
        const float * l = llama_get_logits_ith(s.ctx, idx);
        if (!l) throw Err("no logits for output " + std::to_string(idx));
        return (llama_token) (std::max_element(l, l + n_vocab) - l);
    };

    // Prefill: the K copies of the prompt in one batch, each as its own sequence; logits at each last token.
    llama_batch b = llama_batch_init((int32_t) (K * prompt.size()), 0, 1);
    b.n_tokens = 0;
    for (long k = 0; k < K; ++k)
        for (size_t i = 0; i < prompt.size(); ++i) {
            const int j = b.n_tokens++;
            b.token[j] = prompt[i];
            b.pos[j] = (llama_pos) i;
            b.n_seq_id[j] = 1;
            b.seq_id[j][0] = (llama_seq_id) k;
            b.logits[j] = i + 1 == prompt.size();
        }
    auto t0 = std::chrono::steady_clock::now();
    if (llama_decode(s.ctx, b) != 0) { llama_batch_free(b); throw Err("llama_decode (prefill) failed"); }
    const double prefill_ms = ms_since(t0);
    llama_batch_free(b);
    // llama_get_logits_ith takes the index of the token in the batch: sequence k's last is (k + 1)·P − 1
    const int P = (int) prompt.size();
    keep_logits(P - 1, 0);
    std::vector<llama_token> next(K), gen;
    for (long k = 0; k < K; ++k) next[k] = steps > 0 && !forced.empty() ? forced[0] : argmax((int) ((k + 1) * P - 1));

    llama_batch d = llama_batch_init((int32_t) K, 0, 1);
    t0 = std::chrono::steady_clock::now();
    for (long st = 0; st < steps; ++st) {
        gen.push_back(next[0]);
        d.n_tokens = 0;
        for (long k = 0; k < K; ++k) {
            const int j = d.n_tokens++;
            d.token[j] = next[k];
            d.pos[j] = (llama_pos) (prompt.size() + st);
            d.n_seq_id[j] = 1;
            d.seq_id[j][0] = (llama_seq_id) k;
            d.logits[j] = true;
        }
        if (llama_decode(s.ctx, d) != 0) { llama_batch_free(d); throw Err("llama_decode (step) failed"); }
        keep_logits(0, (int) st + 1);
        for (long k = 0; k < K; ++k) next[k] = !forced.empty() ? (st + 1 < steps ? forced[st + 1] : 0) : argmax((int) k);
    }
    const double decode_ms = ms_since(t0);
    llama_batch_free(d);
    if (a.has("out")) write_dump(a.need("out"), dumped);
    printf("{\"tokens\":[");
    for (size_t i = 0; i < gen.size(); ++i) printf("%s%d", i ? "," : "", gen[i]);
    printf("],\"prefill_ms\":%.3f,\"decode_ms\":%.3f,\"steps\":%ld,\"parallel\":%ld,\"n_vocab\":%d}\n", prefill_ms, decode_ms,
           steps, K, n_vocab);
    return 0;
}

// ------------------------------------------------------------------------------------------- tokenize
void put_utf8(std::string & o, uint32_t cp) {
    if (cp < 0x80) o += (char) cp;
    else if (cp < 0x800) { o += (char) (0xC0 | (cp >> 6)); o += (char) (0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
        o += (char) (0xE0 | (cp >> 12)); o += (char) (0x80 | ((cp >> 6) & 0x3F)); o += (char) (0x80 | (cp & 0x3F));
    } else {
        o += (char) (0xF0 | (cp >> 18)); o += (char) (0x80 | ((cp >> 12) & 0x3F));
        o += (char) (0x80 | ((cp >> 6) & 0x3F)); o += (char) (0x80 | (cp & 0x3F));
    }
}

// Parses one JSON string literal (the whole line, surrounding whitespace allowed) into UTF-8.
// Lone surrogates become U+FFFD, as Node's Buffer.from(str, 'utf8') does.
std::string parse_json_string(const std::string & line, size_t lineno) {
    auto bad = [&](const char * why) { return Err("line " + std::to_string(lineno) + ": " + why); };
    size_t i = line.find_first_not_of(" \t\r");
    if (i == std::string::npos || line[i] != '"') throw bad("expected a JSON string");
    ++i;
    std::string o;
    auto hex4 = [&](size_t at) -> uint32_t {
        if (at + 4 > line.size()) throw bad("truncated \\u escape");
        return (uint32_t) std::stoul(line.substr(at, 4), nullptr, 16);
    };
    for (;;) {
        if (i >= line.size()) throw bad("unterminated string");
        char ch = line[i++];
        if (ch == '"') break;
        if (ch != '\\') { o += ch; continue; }
        if (i >= line.size()) throw bad("bad escape");
        char e = line[i++];
        switch (e) {
            case '"': o += '"'; break;
            case '\\': o += '\\'; break;
            case '/': o += '/'; break;
            case 'b': o += '\b'; break;
            case 'f': o += '\f'; break;
            case 'n': o += '\n'; break;
            case 'r': o += '\r'; break;
            case 't': o += '\t'; break;
            case 'u': {
                uint32_t cp = hex4(i); i += 4;
                if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= line.size() && line[i] == '\\' && line[i + 1] == 'u') {
                    uint32_t lo = hex4(i + 2);
                    if (lo >= 0xDC00 && lo < 0xE000) { cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00); i += 6; }
                }
                if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
                put_utf8(o, cp);
                break;
            }
            default: throw bad("bad escape");
        }
    }
    return o;
}

int cmd_tokenize(const Args & a) {
    const bool add_special = !a.has("no-bos"), parse_special = !a.has("no-special");
    std::ifstream in(a.need("in"), std::ios::binary);
    if (!in) throw Err("cannot read " + a.need("in"));
    std::ofstream out(a.need("out"), std::ios::binary);
    if (!out) throw Err("cannot write " + a.need("out"));

    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    const std::string path = a.need("model");
    llama_model * model = llama_model_load_from_file(path.c_str(), mp);
    if (!model) throw Err("failed to load vocabulary " + path + " (rerun with --verbose)");
    const llama_vocab * vocab = llama_model_get_vocab(model);

    std::vector<llama_token> ids;
    std::string line, buf;
    size_t lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank line (e.g. trailing)
        const std::string text = parse_json_string(line, lineno);
        ids.resize(text.size() + 8);
        int32_t n = llama_tokenize(vocab, text.data(), (int32_t) text.size(), ids.data(), (int32_t) ids.size(),
                                   add_special, parse_special);
        if (n < 0 && n != INT32_MIN) {
            ids.resize((size_t) -n);
            n = llama_tokenize(vocab, text.data(), (int32_t) text.size(), ids.data(), (int32_t) ids.size(),
                               add_special, parse_special);
        }
        if (n < 0) { llama_model_free(model); throw Err("llama_tokenize failed on line " + std::to_string(lineno)); }
        buf = "[";
        for (int32_t k = 0; k < n; ++k) { if (k) buf += ','; buf += std::to_string(ids[k]); }
        buf += "]\n";
        out << buf;
    }
    llama_model_free(model);
    if (!out) throw Err("write failed");
    return 0;
}

// ------------------------------------------------------------------------------------------- quantize
int cmd_quantize(const Args & a) {
    static const std::map<std::string, llama_ftype> types = {
        {"f32", LLAMA_FTYPE_ALL_F32},         {"f16", LLAMA_FTYPE_MOSTLY_F16},       {"bf16", LLAMA_FTYPE_MOSTLY_BF16},
        {"q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},    {"q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},     {"q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},
        {"q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},    {"q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},     {"q6_k", LLAMA_FTYPE_MOSTLY_Q6_K},
        {"q4_k_s", LLAMA_FTYPE_MOSTLY_Q4_K_S}, {"q4_k_m", LLAMA_FTYPE_MOSTLY_Q4_K_M},
        {"q5_k_s", LLAMA_FTYPE_MOSTLY_Q5_K_S}, {"q5_k_m", LLAMA_FTYPE_MOSTLY_Q5_K_M},
    };
    std::string t = a.need("type");
    std::transform(t.begin(), t.end(), t.begin(), ::tolower);
    auto it = types.find(t);
    if (it == types.end()) throw Err("unknown --type " + t);
    llama_model_quantize_params qp = llama_model_quantize_default_params();
    qp.ftype = it->second;
    qp.nthread = (int32_t) a.num("threads", default_threads());
    const std::string in = a.need("in"), out = a.need("out");
    if (llama_model_quantize(in.c_str(), out.c_str(), &qp) != 0)
        throw Err("llama_model_quantize failed for " + in + " (rerun with --verbose)");
    return 0;
}

// ------------------------------------------------------------------------------------------- time

int cmd_time(const Args & a) {
    const auto toks = parse_tokens(a.need("tokens"));
    const long repeat = a.num("repeat", 5), warmup = a.num("warmup", 1);
    if (repeat < 1) throw Err("--repeat must be >= 1");
    Capture cap;
    cap.stop_after = a.get("stop-after");

    auto t0 = std::chrono::steady_clock::now();
    Session s;
    load_model(s, a, /*mmap_default=*/true);
    llama_context_params cp = llama_context_default_params();  // f16 KV, flash attention auto
    if (a.has("f32-kv")) {
        cp.type_k = cp.type_v = GGML_TYPE_F32;
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    }
    if (!cap.stop_after.empty()) {
        cp.cb_eval = eval_cb;
        cp.cb_eval_user_data = &cap;
        cp.abort_callback = abort_cb;
        cp.abort_callback_data = &cap;
    }
    make_context(s, a, cp, (uint32_t) toks.size());
    const double load_ms = ms_since(t0);

    Batch batch(toks, false);
    std::vector<double> times;
    for (long r = 0; r < warmup + repeat; ++r) {
        llama_memory_clear(llama_get_memory(s.ctx), true);
        cap.stopped = false;
        cap.seen.clear();
        auto t1 = std::chrono::steady_clock::now();
        const int rc = llama_decode(s.ctx, batch.b);
        const double dt = ms_since(t1);
        if (rc != 0 && !(cap.stopped && rc == 2)) throw Err("llama_decode failed with " + std::to_string(rc));
        if (!cap.stop_after.empty() && !cap.stopped)
            throw Err("--stop-after tensor '" + cap.stop_after + "' never appeared in the graph");
        if (r >= warmup) times.push_back(dt);
    }
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    const size_t m = sorted.size();
    const double median = m % 2 ? sorted[m / 2] : 0.5 * (sorted[m / 2 - 1] + sorted[m / 2]);
    printf("{\"load_ms\":%.3f,\"decode_ms\":[", load_ms);
    for (size_t i = 0; i < times.size(); ++i) printf("%s%.3f", i ? "," : "", times[i]);
    printf("],\"median_ms\":%.3f,\"threads\":%ld,\"n_tokens\":%zu,\"f32_kv\":%s}\n", median,
           a.num("threads", default_threads()), toks.size(), a.has("f32-kv") ? "true" : "false");
    return 0;
}

}  // namespace

int main(int argc, char ** argv) {
    try {
        Args a = parse_args(argc, argv);
        g_verbose = a.has("verbose");
        llama_log_set(log_cb, nullptr);
        if (a.cmd == "--help" || a.cmd == "help") {
            puts("llama_ref dump|tokenize|quantize|time ... (see the header of test/reference/llama_ref.cpp)");
            return 0;
        }
        load_backends();
        if (a.cmd == "dump") return cmd_dump(a);
        if (a.cmd == "decode") return cmd_decode(a);
        if (a.cmd == "tokenize") return cmd_tokenize(a);
        if (a.cmd == "quantize") return cmd_quantize(a);
        if (a.cmd == "time") return cmd_time(a);
        throw Err("unknown command '" + a.cmd + "' (dump|decode|tokenize|quantize|time)");
    } catch (const std::exception & e) {
        fprintf(stderr, "llama_ref: error: %s\n", e.what());
        return 1;
    }
}
