// Whole requests on a session, strings in and vectors out, so that one request is one native job: the
// tokenizer, the batched passes and the linear head run together off the caller's thread.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/head.h"
#include "runtime/session.h"

namespace nla {

// The ids of text (BOS first when add_bos), refusing a text longer than max_tokens tokens. A text of B bytes
// has at least B / max_token_bytes tokens, so a far too long one is refused before it is tokenized (bounded
// time and memory for any input). Throws ERR_NLA_CONTEXT_OVERFLOW naming the limit.
std::vector<int32_t> tokenize_bounded(const Model& model, const std::string& text, int64_t max_tokens, bool add_bos = true,
                                      bool parse_special = true);

struct PromptRequest {
  std::vector<std::string> texts;             // tokenized with BOS and special tokens, or
  std::vector<std::vector<int32_t>> tokens;   // token ids (when texts is empty)
  int layer = -1;                             // read this block's output (-1: the last block)
  int adapter_id = 0;                         // 0: the base model
  Session::Read read = Session::Read::Last;
  GeluMode gelu = GeluMode::Exact;
  std::function<bool()> should_abort;
  int64_t max_pass_tokens = Session::kDefaultPassTokens;
};

// Each prompt's block-`layer` output (rows × n_embd: its last row, or every row), batched.
std::vector<Session::Output> hidden_states(Session& session, const PromptRequest& request);

// The AR: head(block-`layer` output at each prompt's last token). A non-finite hidden state is the model's or
// the adapter's fault (ERR_NLA_MODEL_INVALID / ERR_NLA_ADAPTER_INVALID), never the caller's.
std::vector<std::vector<float>> reconstruct(Session& session, const PromptRequest& request, const LinearHead& head);

}  // namespace nla
