# Tokenizer and chat-template suites (doctest; they run on the GPU machine too).
dsv2_add_doctest(NAME tokenizer_test SOURCES
  tokenizer/tokenizer_test.cpp
  tokenizer/utf8_test.cpp
  tokenizer/robustness_test.cpp
)
dsv2_add_doctest(NAME chat_template_test SOURCES tokenizer/chat_template_test.cpp)
