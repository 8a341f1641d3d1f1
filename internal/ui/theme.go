package ui

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// palette is the fixed part of the theme; signet.css uses only these custom properties, so every colour
// a page shows is here or derived from Branding below, and the tests check their contrast.
var palette = [][2]string{
	{"bg", "#f3f4f6"},
	{"surface", "#ffffff"},
	{"text", "#1f2937"},
	{"muted", "#4b5563"},
	{"line", "#e5e7eb"},
	{"field-border", "#6b7280"},
	{"error", "#b42318"},
	{"error-bg", "#fef3f2"},
	{"notice", "#1e40af"},
	{"notice-bg", "#eff6ff"},
	{"banner", "#92400e"},
	{"banner-text", "#ffffff"},
}

func paletteColor(name string) string {
	for _, p := range palette {
		if p[0] == name {
			return p[1]
		}
	}
	panic("ui: no palette colour " + name)
}

// themeCSS writes the colours as CSS custom properties. The button text, link and focus colours are
// chosen from the operator's colours only where they keep WCAG AA contrast, so branding cannot make a
// page unreadable.
func themeCSS(b Branding) []byte {
	primary := b.PrimaryColor
	accent := b.AccentColor
	if accent == "" {
		accent = primary
	}
	onPrimary := "#ffffff"
	if contrast(primary, onPrimary) < 4.5 {
		onPrimary = "#111827"
	}
	link := primary
	if math.Min(contrast(link, paletteColor("surface")), contrast(link, paletteColor("bg"))) < 4.5 {
		link = paletteColor("text")
	}
	focus := accent
	if contrast(focus, paletteColor("surface")) < 3 {
		focus = paletteColor("text")
	}
	var s strings.Builder
	s.WriteString("/* Generated from Signet's branding settings. */\n:root {\n")
	for _, p := range palette {
		fmt.Fprintf(&s, "  --%s: %s;\n", p[0], p[1])
	}
	fmt.Fprintf(&s, "  --primary: %s;\n  --on-primary: %s;\n  --accent: %s;\n  --link: %s;\n  --focus: %s;\n}\n",
		primary, onPrimary, accent, link, focus)
	return []byte(s.String())
}

// contrast is the WCAG 2 contrast ratio of two validated hex colours.
func contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// luminance is WCAG 2's relative luminance of #rgb or #rrggbb.
func luminance(hex string) float64 {
	h := strings.TrimPrefix(hex, "#")
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	var rgb [3]float64
	for i := range rgb {
		v, _ := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		c := float64(v) / 255
		if c <= 0.04045 {
			rgb[i] = c / 12.92
		} else {
			rgb[i] = math.Pow((c+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*rgb[0] + 0.7152*rgb[1] + 0.0722*rgb[2]
}
