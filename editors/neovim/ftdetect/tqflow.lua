vim.filetype.add({ extension = { tqflow = "tqflow" } })
