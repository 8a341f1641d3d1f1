package ui

import "strings"

// DeviceName turns a User-Agent into a short description for the sessions list: "Chrome on Linux",
// "Safari on iPhone", "curl", "Unknown device". It returns only fixed strings, never part of the header.
func DeviceName(userAgent string) string {
	ua := strings.TrimSpace(userAgent)
	if ua == "" {
		return "Unknown device"
	}
	for _, t := range tools {
		if strings.HasPrefix(strings.ToLower(ua), t.prefix) {
			return t.name
		}
	}
	browser := firstMatch(ua, browsers)
	os := firstMatch(ua, systems)
	switch {
	case browser != "" && os != "":
		return browser + " on " + os
	case browser != "":
		return browser
	case os != "":
		return "Browser on " + os
	}
	return "Unknown device"
}

type uaMatch struct{ token, name string }

var tools = []struct{ prefix, name string }{
	{"curl/", "curl"},
	{"wget/", "Wget"},
	{"python-requests/", "Python"},
	{"python-urllib/", "Python"},
	{"go-http-client/", "Go program"},
	{"okhttp/", "Android app"},
	{"postmanruntime/", "Postman"},
}

// Order matters: Edge and Opera also say Chrome, Chrome also says Safari, Android also says Linux.
var browsers = []uaMatch{
	{"Edg/", "Edge"}, {"EdgA/", "Edge"}, {"EdgiOS/", "Edge"},
	{"OPR/", "Opera"},
	{"SamsungBrowser/", "Samsung Internet"},
	{"Firefox/", "Firefox"}, {"FxiOS/", "Firefox"},
	{"CriOS/", "Chrome"}, {"Chrome/", "Chrome"}, {"Chromium/", "Chromium"},
	{"Safari/", "Safari"},
}

var systems = []uaMatch{
	{"iPhone", "iPhone"}, {"iPad", "iPad"},
	{"Android", "Android"},
	{"Windows", "Windows"},
	{"CrOS", "ChromeOS"},
	{"Macintosh", "macOS"}, {"Mac OS X", "macOS"},
	{"Linux", "Linux"},
}

func firstMatch(ua string, ms []uaMatch) string {
	for _, m := range ms {
		if strings.Contains(ua, m.token) {
			return m.name
		}
	}
	return ""
}
