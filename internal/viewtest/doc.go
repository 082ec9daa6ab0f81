// Package viewtest helps test read models: a random but valid order
// workload, and second stores on the same database (a second "process").
package viewtest
