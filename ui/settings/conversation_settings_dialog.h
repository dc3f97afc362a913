#pragma once
// ConversationSettingsDialog: the system prompt and sampling of one conversation. Every field shows
// the value in force: the conversation's own choice, else the model's default (from its
// generation_config.json). Only fields the user set (or a preset set) are stored with the
// conversation; "Model defaults" clears them.

#include <QDialog>

#include "backend/chat_types.h"

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QPlainTextEdit;
class QSpinBox;

namespace dsv2::ui {

class ConversationSettingsDialog : public QDialog {
    Q_OBJECT
public:
    ConversationSettingsDialog(const GenerationSettings& current, const GenerationSettings& modelDefaults,
                               QWidget* parent = nullptr);

    GenerationSettings settings() const;
    void applyPresetById(const QString& id);

private:
    void load(const GenerationSettings& s);
    void markSet(int field);
    void updatePresetCombo();

    enum Field { Temperature, TopP, TopK, MaxTokens, RepetitionPenalty, FieldCount };

    GenerationSettings m_defaults;
    bool m_set[FieldCount] = {};
    bool m_loading = false;
    QComboBox* m_preset = nullptr;
    QLabel* m_presetHelp = nullptr;
    QPlainTextEdit* m_system = nullptr;
    QDoubleSpinBox* m_temperature = nullptr;
    QDoubleSpinBox* m_topP = nullptr;
    QSpinBox* m_topK = nullptr;
    QSpinBox* m_maxTokens = nullptr;
    QDoubleSpinBox* m_repetition = nullptr;
    QCheckBox* m_fixedSeed = nullptr;
    QSpinBox* m_seed = nullptr;
};

}  // namespace dsv2::ui
