#pragma once
// Light and dark. "System" (the default) keeps the platform's palette and follows its changes;
// Light and Dark use Fusion with a fixed palette, for desktops whose theme Qt cannot read (and for
// screenshots under Xvfb). Every widget paints from the palette, so a switch repaints everything.

#include <QString>

namespace dsv2::ui {

enum class Theme { System, Light, Dark };

void applyTheme(Theme theme);
Theme currentTheme();
QString themeName(Theme theme);            // "system", "light", "dark"
Theme themeFromName(const QString& name);  // unknown: System

}  // namespace dsv2::ui
