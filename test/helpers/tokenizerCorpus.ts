// A deterministic corpus of varied strings for comparing our Gemma-4 tokenizer
// with llama.cpp's (and, later, Hugging Face's).
//
// It deliberately avoids the tokens whose handling differs between llama.cpp and
// Hugging Face (design/gemma4.md §6 divergences, numerics.md): the non-special
// added tokens `<unusedN>`, `<mask>`, `[multimodal]`, and HTML-like tags such as
// `<table>` or `</s>`. `<` and `>` therefore only appear inside special tokens or
// next to spaces/digits, never around letters.

/** mulberry32: small, fast, deterministic. */
function makeRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'the of and to in is was that for it with as on be at by this had not are but from or have an they which ' +
  'one you were her all she there would their we him been has when who will more no if out so said what up ' +
  'its about into than them can only other new some could time these two may then do first any my now such ' +
  'like our over man me even most made after also did many before must through back years where much your way ' +
  'well down should because each just those people Mr how too little state good very make world still own see ' +
  'men work long get here between both life being under never day same another know while last might us great ' +
  'old year off come since against go came right used take three activation reconstruction residual stream ' +
  'layer token embedding summary explanation model attention gradient vector hidden state transformer ' +
  'HELLO World Hello hello don\'t I\'m it\'s we\'ll they\'re you\'ve \'RE \'M gemma llama.cpp GGUF q4_K_M ' +
  'naïve café résumé coöperate façade Zürich São Paulo München'
).split(' ');

const PUNCT = '.,;:!?\'"()[]{}-_=+*/\\|@#$%^&~`';

const SPECIALS = [
  '<bos>', '<eos>', '<pad>', '<|turn>', '<turn|>', '<|"|>', '<|tool_call>', '<tool_call|>',
  '<|tool_response>', '<tool_response|>', '<|channel>', '<channel|>', '<|think|>', '<|tool>', '<tool|>',
  '<|image|>', '<|audio|>', '<|image>', '<image|>', '<|video|>',
];

const UNICODE_SNIPPETS = [
  // CJK
  '你好，世界', '我们在这里测试分词器。', '東京都は日本の首都です', 'ひらがなとカタカナ', '한국어 텍스트입니다',
  '中文 English 混合', '漢字', '㊗', '㊗️ おめでとう',
  // emoji, incl. ZWJ sequences, skin tones, flags, variation selectors
  '🦙', '😀😃😄', '👨‍👩‍👧‍👦', '🏳️‍🌈', '👩🏽‍💻', '🧑‍🚀', '👍🏿', '🇫🇷🇯🇵', '❤️', '✨🔥💯', '🫠', '🤦‍♂️',
  // Cyrillic
  'Привет, мир!', 'Съешь же ещё этих мягких французских булок', 'ЁЖИК в тумане',
  // Khmer
  'ស្វាគមន៍', 'ភាសាខ្មែរ', 'ព្រះរាជាណាចក្រកម្ពុជា',
  // Vietnamese: precomposed and with combining marks (NFD)
  'Cửa Việt', 'Tiếng Việt rất hay', 'Ngươi đi đâu vậy?', 'Vie\u0323\u0302t Nam', 'Tie\u0302\u0301ng Vie\u0323\u0302t',
  'a\u0301 e\u0300 o\u0303 u\u0308',
  // RTL
  'مرحبا بالعالم', 'العربية لغة جميلة', 'שלום עולם', 'עברית', 'سلام ‏دنیا',
  // other scripts
  'नमस्ते दुनिया', 'สวัสดีชาวโลก', 'Γειά σου Κόσμε', 'Ελληνικά', 'ሰላም', 'ᚠᛇᚻ', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '𝟙𝟚𝟛',
  // odd spaces and invisible characters
  'a\u00a0b', 'x\u3000y', '\u200bzero\u200bwidth', 'soft\u00adhyphen', '\ufeffbom', 'e\u200dz', 'tab\u000bvt',
  'form\ffeed', 'ÅÄÖ åäö', 'ß ẞ', 'ﬁ ﬂ', '½ ¼ ¾', '™ © ®', '° ± × ÷', '€ £ ¥ ₹ ₿',
];

const CODE_SNIPPETS = [
  'def f(x):\n    return x * 2\n',
  'for i in range(10):\n    if i % 2 == 0:\n        print(i)\n    else:\n        continue\n',
  'function add(a, b) {\n  return a + b;\n}\n',
  'class Foo:\n\tdef __init__(self):\n\t\tself.x = 1\n',
  'int main(void) {\n    printf("hello\\n");\n    return 0;\n}\n',
  'const xs = [1, 2, 3].map((x) => x ** 2);\n',
  'SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;\n',
  '{\n  "key": "value",\n  "list": [1, 2.5, -3e10, null, true]\n}\n',
  '$ ls -la | grep ".ts" && echo done\n',
  '    # indented comment\n        deeper = {"a": [1, 2]}\n',
  'if (a < b && b > c) { x = a << 2; y = b >> 1; }\n',
  'fn main() -> Result<(), Box<dyn Error>> {\n    Ok(())\n}\n',
];

export function makeTokenizerCorpus(seed: number, n: number): string[] {
  const rnd = makeRng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];

  const word = (): string => pick(WORDS);
  const sentence = (): string => {
    const k = int(3, 18);
    const ws: string[] = [];
    for (let i = 0; i < k; i++) ws.push(word());
    let s = ws.join(' ');
    s = s.charAt(0).toUpperCase() + s.slice(1);
    return s + pick(['.', '.', '.', '!', '?', '...', ':', ';', '']);
  };
  const spaces = (): string => ' '.repeat(int(1, rnd() < 0.2 ? 80 : 8));
  const tabs = (): string => '\t'.repeat(int(1, rnd() < 0.2 ? 40 : 4));
  const newlines = (): string => '\n'.repeat(int(1, rnd() < 0.25 ? 100 : 4));
  const whitespace = (): string => {
    const parts: string[] = [];
    const k = int(1, 6);
    for (let i = 0; i < k; i++) {
      parts.push(pick([spaces, tabs, newlines, () => '\r\n', () => '\r', () => ' \n ', () => '\t\n'])());
    }
    return parts.join('');
  };
  const digits = (): string => {
    const r = rnd();
    if (r < 0.3) return String(int(0, 9999999));
    if (r < 0.5) return (rnd() * 1e6).toFixed(int(0, 6));
    if (r < 0.7) return `${int(1, 31)}/${int(1, 12)}/${int(1900, 2100)}`;
    if (r < 0.85) return '0'.repeat(int(1, 12)) + String(int(0, 99));
    return `+${int(1, 99)} (${int(100, 999)}) ${int(100, 999)}-${int(1000, 9999)}`;
  };
  const punct = (): string => {
    let s = '';
    const k = int(1, rnd() < 0.2 ? 30 : 4);
    const c = pick([...PUNCT]);
    for (let i = 0; i < k; i++) s += rnd() < 0.6 ? c : pick([...PUNCT]);
    return s;
  };
  const unicode = (): string => pick(UNICODE_SNIPPETS);
  const code = (): string => {
    const s = pick(CODE_SNIPPETS);
    // Re-indent by a random amount with spaces or tabs.
    const ind = rnd() < 0.5 ? ' '.repeat(int(0, 12)) : '\t'.repeat(int(0, 3));
    return s.split('\n').map((l) => (l ? ind + l : l)).join('\n');
  };
  // Random code points from assorted ranges (no surrogates; no '<', '>' or '[', so no tag can form).
  const RANGES: [number, number][] = [
    [0x21, 0x7e], [0x20, 0x20], [0x09, 0x0a], [0xa0, 0x24f], [0x370, 0x52f], [0x590, 0x6ff], [0x900, 0x97f],
    [0xe00, 0xe7f], [0x1780, 0x17ff], [0x1e00, 0x1eff], [0x2000, 0x206f], [0x2100, 0x27bf], [0x3000, 0x30ff],
    [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xe000, 0xf8ff], [0xfe00, 0xfe0f], [0xff00, 0xffef], [0xfff0, 0xffff],
    [0x10000, 0x1007f], [0x1f300, 0x1faff], [0x20000, 0x2a6df], [0xe0000, 0xe007f], [0x10fff0, 0x10ffff],
  ];
  const randomChars = (): string => {
    let s = '';
    const k = int(1, 40);
    const [lo, hi] = pick(RANGES);
    for (let i = 0; i < k; i++) {
      const [a, b] = rnd() < 0.7 ? [lo, hi] : pick(RANGES);
      const cp = int(a, b);
      if (cp === 0x3c || cp === 0x3e || cp === 0x5b) continue;
      s += String.fromCodePoint(cp);
    }
    return s;
  };
  const special = (): string => pick(SPECIALS);
  const nearSpecial = (): string =>
    pick(['<|turn', 'turn|>', '<|', '|>', '<|"', '"|>', '<bos', 'bos>', '< bos >', '<|tool_call', '<<|turn>>',
      '<|turn><|turn>', '<bos><bos>', '<|"|><|"|>', '<<bos>>', '<|channel|>', '<||>', '< 3', '2 > 1', '<=>', '->', '<-']);
  const atom = (): string => {
    const r = rnd();
    if (r < 0.3) return sentence();
    if (r < 0.42) return whitespace();
    if (r < 0.5) return digits();
    if (r < 0.57) return punct();
    if (r < 0.68) return unicode();
    if (r < 0.74) return randomChars();
    if (r < 0.82) return code();
    if (r < 0.9) return special();
    if (r < 0.94) return nearSpecial();
    return word();
  };
  const joiner = (): string => pick(['', ' ', ' ', ' ', '  ', '\n', '\n\n', '\t', ', ', '. ']);
  const mixture = (k: number): string => {
    let s = atom();
    for (let i = 1; i < k; i++) s += joiner() + atom();
    return s;
  };
  const arTemplate = (): string => {
    const body = mixture(int(1, 12));
    return pick([
      `Summary of the following text: <text>${body}</text> <summary>`,
      `<bos>Summary of the following text: <text>${body}</text> <summary>`,
      `<|turn>user\n${body}<turn|>\n<|turn>model\n`,
    ]);
  };
  const long = (): string => {
    const parts: string[] = [];
    const k = int(30, 150);
    for (let i = 0; i < k; i++) parts.push(rnd() < 0.85 ? sentence() : atom());
    return parts.join(pick([' ', ' ', '\n', '\n\n']));
  };

  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = rnd();
    let s: string;
    if (r < 0.15) s = atom();
    else if (r < 0.65) s = mixture(int(2, 10));
    else if (r < 0.8) s = arTemplate();
    else if (r < 0.88) s = long();
    else if (r < 0.93) s = whitespace() + atom() + whitespace();
    else s = mixture(int(10, 40));
    out.push(s);
  }
  return out;
}
