"""MIDI out: control frames' events -> MIDI messages (MidiEncoder), the outputs that carry them
(a port through RtMidi, a .mid file, a printer, a control CSV) and the CC map that names which
controller each knob is on (ccmap.py). The live engine and file mode share every class here."""
from rtmirror.midi.output import (CC_ALL_NOTES_OFF, CC_STATUS, NOTE_OFF_STATUS, NOTE_ON_STATUS,
                                  PITCH_BEND_STATUS, ControlsCsv, MessagePrinter, MidiEncoder,
                                  MidiFileRecorder, MidiOut, PortOutput, api_label, api_names,
                                  choose_api, describe, find_port, list_output_ports, note_name)

__all__ = ["CC_ALL_NOTES_OFF", "CC_STATUS", "NOTE_OFF_STATUS", "NOTE_ON_STATUS", "PITCH_BEND_STATUS",
           "ControlsCsv", "MessagePrinter", "MidiEncoder", "MidiFileRecorder", "MidiOut", "PortOutput",
           "api_label", "api_names", "choose_api", "describe", "find_port", "list_output_ports", "note_name"]
