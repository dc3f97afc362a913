#include "settings/conversation_settings_dialog.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>

#include "settings/presets.h"

namespace dsv2::ui {

ConversationSettingsDialog::ConversationSettingsDialog(const GenerationSettings& current,
                                                       const GenerationSettings& modelDefaults, QWidget* parent)
    : QDialog(parent), m_defaults(modelDefaults) {
    setObjectName(QStringLiteral("conversationSettingsDialog"));
    setWindowTitle(tr("Conversation settings"));
    auto* layout = new QVBoxLayout(this);
    auto* form = new QFormLayout;

    m_preset = new QComboBox(this);
    m_preset->setObjectName(QStringLiteral("presetCombo"));
    m_preset->setAccessibleName(tr("Preset"));
    for (const SamplingPreset& p : samplingPresets()) m_preset->addItem(p.name, p.id);
    m_preset->addItem(tr("Custom"), QString());
    form->addRow(tr("&Preset:"), m_preset);
    m_presetHelp = new QLabel(this);
    m_presetHelp->setWordWrap(true);
    m_presetHelp->setForegroundRole(QPalette::PlaceholderText);
    form->addRow(QString(), m_presetHelp);

    m_system = new QPlainTextEdit(this);
    m_system->setObjectName(QStringLiteral("systemPromptEdit"));
    m_system->setAccessibleName(tr("System prompt"));
    m_system->setPlaceholderText(tr("Optional: instructions the model sees before the conversation"));
    m_system->setMaximumHeight(110);
    form->addRow(tr("&System prompt:"), m_system);

    auto spin = [this](QDoubleSpinBox* box, double lo, double hi, double step, int decimals, const QString& name) {
        box->setRange(lo, hi);
        box->setSingleStep(step);
        box->setDecimals(decimals);
        box->setAccessibleName(name);
        box->setObjectName(name.toLower().remove(QLatin1Char(' ')).remove(QLatin1Char('-')) + QStringLiteral("Spin"));
        return box;
    };
    m_temperature = spin(new QDoubleSpinBox(this), 0.0, 2.0, 0.05, 2, tr("Temperature"));
    m_temperature->setToolTip(tr("0 = greedy (always the most likely token)"));
    m_topP = spin(new QDoubleSpinBox(this), 0.0, 1.0, 0.01, 2, tr("Top-p"));
    m_topP->setToolTip(tr("1 = off"));
    m_repetition = spin(new QDoubleSpinBox(this), 0.5, 2.0, 0.01, 2, tr("Repetition penalty"));
    m_repetition->setToolTip(tr("1 = off"));
    m_topK = new QSpinBox(this);
    m_topK->setRange(0, 100000);
    m_topK->setAccessibleName(tr("Top-k"));
    m_topK->setObjectName(QStringLiteral("topkSpin"));
    m_topK->setSpecialValueText(tr("off"));
    m_maxTokens = new QSpinBox(this);
    m_maxTokens->setRange(1, 1 << 20);
    m_maxTokens->setAccessibleName(tr("Maximum new tokens"));
    m_maxTokens->setObjectName(QStringLiteral("maxTokensSpin"));
    form->addRow(tr("&Temperature:"), m_temperature);
    form->addRow(tr("Top-&p:"), m_topP);
    form->addRow(tr("Top-&k:"), m_topK);
    form->addRow(tr("&Max new tokens:"), m_maxTokens);
    form->addRow(tr("&Repetition penalty:"), m_repetition);

    auto* seedRow = new QHBoxLayout;
    m_fixedSeed = new QCheckBox(tr("Fixed"), this);
    m_fixedSeed->setObjectName(QStringLiteral("fixedSeedCheck"));
    m_fixedSeed->setAccessibleName(tr("Use a fixed seed"));
    m_fixedSeed->setToolTip(tr("The same seed and settings give the same answer"));
    m_seed = new QSpinBox(this);
    m_seed->setObjectName(QStringLiteral("seedSpin"));
    m_seed->setAccessibleName(tr("Seed"));
    m_seed->setRange(0, std::numeric_limits<int>::max());
    seedRow->addWidget(m_fixedSeed);
    seedRow->addWidget(m_seed, 1);
    form->addRow(tr("S&eed:"), seedRow);
    connect(m_fixedSeed, &QCheckBox::toggled, m_seed, &QWidget::setEnabled);
    layout->addLayout(form);

    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    QPushButton* reset = buttons->addButton(tr("Model defaults"), QDialogButtonBox::ResetRole);
    reset->setObjectName(QStringLiteral("resetDefaultsButton"));
    connect(reset, &QPushButton::clicked, this, [this] { applyPresetById(QStringLiteral("model")); });
    connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    layout->addWidget(buttons);

    connect(m_temperature, &QDoubleSpinBox::valueChanged, this, [this] { markSet(Temperature); });
    connect(m_topP, &QDoubleSpinBox::valueChanged, this, [this] { markSet(TopP); });
    connect(m_topK, &QSpinBox::valueChanged, this, [this] { markSet(TopK); });
    connect(m_maxTokens, &QSpinBox::valueChanged, this, [this] { markSet(MaxTokens); });
    connect(m_repetition, &QDoubleSpinBox::valueChanged, this, [this] { markSet(RepetitionPenalty); });
    connect(m_preset, &QComboBox::activated, this, [this](int index) {
        const QString id = m_preset->itemData(index).toString();
        if (!id.isEmpty()) applyPresetById(id);
    });

    m_system->setPlainText(current.systemPrompt);
    m_fixedSeed->setChecked(current.seed.has_value());
    m_seed->setEnabled(current.seed.has_value());
    m_seed->setValue(
        static_cast<int>(current.seed.value_or(42) % static_cast<quint64>(std::numeric_limits<int>::max())));
    load(current);
}

void ConversationSettingsDialog::load(const GenerationSettings& s) {
    m_loading = true;
    m_set[Temperature] = s.temperature.has_value();
    m_set[TopP] = s.topP.has_value();
    m_set[TopK] = s.topK.has_value();
    m_set[MaxTokens] = s.maxTokens.has_value();
    m_set[RepetitionPenalty] = s.repetitionPenalty.has_value();
    m_temperature->setValue(s.temperature.value_or(m_defaults.temperature.value_or(0.0)));
    m_topP->setValue(s.topP.value_or(m_defaults.topP.value_or(1.0)));
    m_topK->setValue(s.topK.value_or(m_defaults.topK.value_or(0)));
    m_maxTokens->setValue(s.maxTokens.value_or(m_defaults.maxTokens.value_or(256)));
    m_repetition->setValue(s.repetitionPenalty.value_or(m_defaults.repetitionPenalty.value_or(1.0)));
    m_loading = false;
    updatePresetCombo();
}

void ConversationSettingsDialog::markSet(int field) {
    if (m_loading) return;
    m_set[field] = true;
    updatePresetCombo();
}

void ConversationSettingsDialog::applyPresetById(const QString& id) {
    for (const SamplingPreset& p : samplingPresets()) {
        if (p.id != id) continue;
        GenerationSettings s = settings();
        if (id == QLatin1String("model")) {
            s = GenerationSettings{.systemPrompt = s.systemPrompt, .seed = s.seed};
        } else {
            s = applyPreset(s, p);
        }
        load(s);
        return;
    }
}

void ConversationSettingsDialog::updatePresetCombo() {
    const GenerationSettings s = settings();
    const bool anySet = std::any_of(std::begin(m_set), std::end(m_set), [](bool b) { return b; });
    const QString id = anySet ? matchingPreset(s) : QStringLiteral("model");
    const int index = m_preset->findData(id);
    m_preset->setCurrentIndex(index >= 0 ? index : m_preset->count() - 1);
    for (const SamplingPreset& p : samplingPresets())
        if (p.id == id) m_presetHelp->setText(p.description);
    if (id.isEmpty()) m_presetHelp->setText(tr("Your own choice of values."));
}

GenerationSettings ConversationSettingsDialog::settings() const {
    GenerationSettings s;
    s.systemPrompt = m_system->toPlainText().trimmed();
    if (m_set[Temperature]) s.temperature = m_temperature->value();
    if (m_set[TopP]) s.topP = m_topP->value();
    if (m_set[TopK]) s.topK = m_topK->value();
    if (m_set[MaxTokens]) s.maxTokens = m_maxTokens->value();
    if (m_set[RepetitionPenalty]) s.repetitionPenalty = m_repetition->value();
    if (m_fixedSeed->isChecked()) s.seed = static_cast<quint64>(m_seed->value());
    return s;
}

}  // namespace dsv2::ui
