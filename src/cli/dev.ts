// Development entry (`node --import tsx src/cli/dev.ts ...`): the CLI without a build.
import { main } from './main.js';
process.exitCode = await main(process.argv.slice(2));
