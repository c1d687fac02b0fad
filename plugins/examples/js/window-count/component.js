// The component's entry: weir's host interfaces in, the aggregate world out.
import * as log from 'weir:plugin/log@0.6.0';
import * as context from 'weir:plugin/context@0.6.0';
import { aggregateWorld } from './weir.js';
import { WindowCount } from './window_count.js';

export const { init, createAccumulator, add, merge, getResult } = aggregateWorld(WindowCount, { log, context });
