# Tokenizer (byte-level BPE from tokenizer.json) and chat template (a small Jinja interpreter).
target_sources(dsv2_engine PRIVATE
  tokenizer/utf8.cpp
  tokenizer/regex.cpp
  tokenizer/pre_tokenizer.cpp
  tokenizer/bpe_model.cpp
  tokenizer/tokenizer.cpp
  tokenizer/jinja_value.cpp
  tokenizer/jinja_lexer.cpp
  tokenizer/jinja_parser.cpp
  tokenizer/jinja_builtins.cpp
  tokenizer/jinja_template.cpp
  tokenizer/chat_template.cpp
)
