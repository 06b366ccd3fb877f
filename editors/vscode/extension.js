// Starts `tqc lsp` (the tqflow language server) for .tqflow files.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("tqflow").get("server.command", ["tqc", "lsp"]);
  client = new LanguageClient(
    "tqflow",
    "tqflow language server",
    { command, args },
    {
      documentSelector: [{ scheme: "file", language: "tqflow" }],
      // A task module or an imported flow changed on disk: the server checks the open files again.
      synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.{py,tqflow}") },
    },
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
