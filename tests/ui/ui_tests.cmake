# UI suites that need no engine or database: views, models and dialogs on their own (offscreen).
dsv2_add_qttest(NAME ui_chat_view_test SOURCES ui_chat_view_test.cpp LIBS dsv2_ui TIMEOUT 120)
dsv2_add_qttest(NAME ui_dialogs_test SOURCES ui_dialogs_test.cpp LIBS dsv2_ui TIMEOUT 120)
dsv2_add_qttest(NAME ui_server_dialog_test SOURCES ui_server_dialog_test.cpp LIBS dsv2_ui TIMEOUT 120)
dsv2_add_qttest(NAME ui_gpu_test SOURCES ui_gpu_test.cpp LIBS dsv2_ui TIMEOUT 120)
