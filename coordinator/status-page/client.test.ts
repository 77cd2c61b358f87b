import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { clientScript } from './client.js';

/** The ES and DOM declarations, parsed once for both programs below. */
const libFiles = new Map<string, ts.SourceFile | undefined>();

/** Names the script uses but neither declares nor finds among the browser's globals (ES2022 and the DOM). */
function undeclaredNames(script: string): string[] {
  const fileName = '/status-page-script.js';
  const options: ts.CompilerOptions = { allowJs: true, checkJs: true, noEmit: true, target: ts.ScriptTarget.ES2022, lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'], types: [], skipLibCheck: true };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.fileExists = (name) => name === fileName || ts.sys.fileExists(name);
  host.readFile = (name) => (name === fileName ? script : readFile(name));
  host.getSourceFile = (name, languageVersion) =>
    name === fileName
      ? ts.createSourceFile(name, script, languageVersion, true, ts.ScriptKind.JS)
      : libFiles.get(name) ?? libFiles.set(name, getSourceFile(name, languageVersion)).get(name);
  const program = ts.createProgram([fileName], options, host);
  const cannotFindName = new Set([2304, 2552, 2580, 2582]);
  return program
    .getSemanticDiagnostics(program.getSourceFile(fileName))
    .filter((diagnostic) => cannotFindName.has(diagnostic.code))
    .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
}

describe('status page script', () => {
  it('is whole: every name it uses is declared in it or is a browser global', () => {
    expect(undeclaredNames(clientScript)).toEqual([]);
  });

  it('would be caught using a name from outside its functions', () => {
    expect(undeclaredNames(`${clientScript}\nmoduleLevelHelper();\n`)).toEqual([expect.stringContaining('moduleLevelHelper')]);
  });
});
