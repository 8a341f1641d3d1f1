package main

import "github.com/spf13/cobra"

func addAdminCommands(root *cobra.Command) {}
