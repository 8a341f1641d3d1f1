// Package browser holds the tests that drive Signet's hosted pages in headless Chromium (Debian's
// chromium package, through chromedp): what a person sees and does when signing in, enrolling a
// second factor, consenting, managing sessions and signing out. The tests are in *_test.go; this
// file only names the package.
//
// Set SIGNET_SCREENSHOTS to a directory to get a full-page PNG of every page the tests visit, and
// SIGNET_CHROMIUM to use another Chromium binary than /usr/bin/chromium; SIGNET_BROWSER_TRACE logs
// how long each browser action took. All tests share one Chromium process (TestMain stops it); every
// tab has a browser context, so a cookie jar, of its own.
package browser
