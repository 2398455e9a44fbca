import { ENTRY_POINTS } from './commands/index.ts';
import { buildProgram } from './program.ts';

/**
 * The command reference in docs/cli.md: the help texts of `arca` and of each command, from the
 * same definitions as the parser. `npm run gen:cli-docs` writes it between the markers; a test
 * fails when the file is stale.
 */

export const BEGIN_MARKER = '<!-- BEGIN GENERATED REFERENCE: npm run gen:cli-docs writes this part; edit cli/ instead -->';
export const END_MARKER = '<!-- END GENERATED REFERENCE -->';

/** Wide enough for long option names, narrow enough to read on GitHub without scrolling. */
const HELP_WIDTH = 100;

export function renderReference(): string {
  const { program } = buildProgram({ helpWidth: HELP_WIDTH, showGlobalOptions: false });
  const block = (title: string, text: string): string => `### ${title}\n\n\`\`\`text\n${text.trimEnd()}\n\`\`\`\n`;
  return [
    block('arca', program.helpInformation()),
    ...program.commands.filter((c) => !ENTRY_POINTS.some((e) => e.name === c.name())).map((c) => block(c.name(), c.helpInformation())),
    `The in-cluster entry points (${ENTRY_POINTS.map((e) => `\`${e.name}\``).join(', ')}) take options of their own: \`arca agent --help\` and the like list them.\n`,
  ].join('\n');
}

/** `document` with the text between the markers replaced by `reference`. */
export function withReference(document: string, reference: string): string {
  const begin = document.indexOf(BEGIN_MARKER);
  const end = document.indexOf(END_MARKER);
  if (begin < 0 || end < begin) throw new Error(`docs/cli.md has lost its markers; put back "${BEGIN_MARKER}" and "${END_MARKER}".`);
  return `${document.slice(0, begin + BEGIN_MARKER.length)}\n\n${reference}\n${document.slice(end)}`;
}
