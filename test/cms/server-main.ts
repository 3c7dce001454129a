// Entry point for tests that run `desfire-cms` as a real child process (node --import tsx).
import { main } from '../../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
