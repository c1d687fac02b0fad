// The component's entry: weir's host interfaces in, the process world out.
import * as log from 'weir:plugin/log@0.6.0';
import * as context from 'weir:plugin/context@0.6.0';
import * as output from 'weir:plugin/output@0.6.0';
import * as state from 'weir:plugin/state@0.6.0';
import * as timers from 'weir:plugin/timers@0.6.0';
import { processWorld } from './weir.js';
import { {{class}} } from './{{module}}.js';

export const { init, process, onTimer } = processWorld({{class}}, { log, context, output, state, timers });
