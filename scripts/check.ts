// The type check and ESLint on one TypeScript program (npm test's checks). `npm run typecheck` and
// `npm run lint` each build the whole project's program (tsc; ESLint's typed rules through the project
// service), which is most of their cost; here tsc's program is built once and handed to ESLint
// (typescript-eslint's `parserOptions.programs`), with eslint.config.js otherwise as it is.
// Prettier stays `prettier --check .` in its own process. Usage: tsx scripts/check.ts [project root];
// exit 1 when either check finds an error, 2 when there is no usable tsconfig.json.
import { resolve } from 'node:path';
import ts from 'typescript';
import { ESLint } from 'eslint';

const errors = (n: number) => `${n} error${n === 1 ? '' : 's'}`;
const root = resolve(process.argv[2] ?? '.');
const configPath = ts.findConfigFile(root, (f) => ts.sys.fileExists(f), 'tsconfig.json');
if (!configPath) {
  console.error(`check: no tsconfig.json in ${root}; run it from the project root`);
  process.exit(2);
}
const host: ts.FormatDiagnosticsHost = {
  getCanonicalFileName: (f) => f,
  getCurrentDirectory: () => root,
  getNewLine: () => '\n',
};
const parsed = ts.getParsedCommandLineOfConfigFile(
  configPath,
  { noEmit: true },
  {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      console.error(ts.formatDiagnostic(d, host));
      process.exit(2);
    },
  },
);
if (!parsed) process.exit(2);

const t0 = Date.now();
const program = ts.createProgram({
  rootNames: parsed.fileNames,
  options: parsed.options,
  projectReferences: parsed.projectReferences,
  configFileParsingDiagnostics: parsed.errors,
});
const diagnostics = ts.getPreEmitDiagnostics(program);
if (diagnostics.length > 0) {
  console.log(ts.formatDiagnosticsWithColorAndContext(diagnostics, host));
}
const typeErrors = diagnostics.filter((d) => d.category === ts.DiagnosticCategory.Error).length;
console.log(
  `type check: ${typeErrors === 0 ? 'passed' : errors(typeErrors)} (${parsed.fileNames.length} files, ${((Date.now() - t0) / 1000).toFixed(0)} s)`,
);

const t1 = Date.now();
const eslint = new ESLint({
  cwd: root,
  // The same configuration, only the type information comes from the program above.
  overrideConfig: {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: false, programs: [program] } },
  },
});
const results = await eslint.lintFiles(['.']);
const formatter = await eslint.loadFormatter('stylish');
const report = await formatter.format(results);
if (report.trim()) console.log(report.replaceAll(`${root}/`, ''));
const lintErrors = results.reduce((n, r) => n + r.errorCount, 0);
const lintWarnings = results.reduce((n, r) => n + r.warningCount, 0);
console.log(
  `lint: ${lintErrors === 0 ? 'passed' : errors(lintErrors)}${lintWarnings > 0 ? `, ${lintWarnings} warnings` : ''} (${results.length} files, ${((Date.now() - t1) / 1000).toFixed(0)} s)`,
);
process.exit(typeErrors > 0 || lintErrors > 0 ? 1 : 0);
