//! The words on the workspace pages, in Russian and English: one struct, so a template that
//! names a text that does not exist does not compile. `?lang=en` (remembered in the `lang`
//! cookie) switches a browser to English; Russian is the default.

/// Declares [`Texts`] and its two instances from `name: "русский", "English";` lines.
macro_rules! texts {
    ($($name:ident: $ru:literal, $en:literal;)+) => {
        /// Every text a page shows.
        #[derive(Debug)]
        pub struct Texts {
            $(pub $name: &'static str,)+
        }
        /// Russian.
        pub const RU: Texts = Texts { $($name: $ru,)+ };
        /// English.
        pub const EN: Texts = Texts { $($name: $en,)+ };
        /// The texts the page script needs, as JSON (name → text).
        pub fn script_json(t: &Texts) -> String {
            let mut m = serde_json::Map::new();
            $(m.insert(stringify!($name).into(), serde_json::Value::from(t.$name));)+
            serde_json::Value::Object(m).to_string()
        }
    };
}

texts! {
    brand: "Горячая линия", "Hotline";
    skip: "Перейти к содержимому", "Skip to content";
    nav: "Разделы", "Sections";
    nav_desk: "Рабочее место", "Desk";
    nav_board: "Монитор очередей", "Queue board";
    nav_registry: "Реестр обращений", "Appeal registry";
    nav_reports: "Отчёты", "Reports";
    nav_org: "Заявки организации", "Our applications";
    logout: "Выйти", "Log out";
    large_text: "Крупный шрифт", "Large text";
    live_up: "Связь есть", "Live";
    live_down: "Нет связи", "Offline";
    live_off: "Без обновлений", "No live updates";
    live_lost: "Связь с сервером потеряна. Страница восстановит её сама; введённый текст сохранится.", "The connection to the server is lost. The page reconnects by itself; what you typed is kept.";
    state: "Состояние", "State";
    st_logged_out: "Не в очередях", "Logged out";
    st_available: "Свободен", "Available";
    st_ringing: "Звонок", "Ringing";
    st_on_call: "Разговор", "On a call";
    st_wrap_up: "Поствызывная обработка", "Wrap-up";
    st_paused: "Пауза", "Paused";
    since: "с", "since";
    in_state: "В состоянии", "In state";
    btn_login: "Войти в очереди", "Log in to queues";
    btn_pause: "Пауза", "Pause";
    btn_resume: "Продолжить работу", "Resume";
    btn_logout: "Выйти из очередей", "Log out of queues";
    pause_reason: "Причина паузы", "Pause reason";
    reason_break: "Перерыв", "Break";
    reason_paperwork: "Работа с документами", "Paperwork";
    reason_training: "Обучение", "Training";
    reason_supervisor: "По решению руководителя", "By the supervisor";
    wrapup_left: "До следующего звонка, с:", "Next call in, s:";
    my_queues: "Мои очереди", "My queues";
    no_queues: "нет", "none";
    incoming: "Входящий звонок", "Incoming call";
    no_call: "Звонка нет. Карточка звонящего появится здесь, как только зазвонит телефон.", "No call. The caller's card shows here as soon as the phone rings.";
    caller_number: "Номер", "Number";
    citizen: "Заявитель", "Citizen";
    citizen_find: "Найти заявителя: ФИО или телефон", "Find the citizen: name or phone";
    citizen_new: "Новая карточка", "New card";
    citizen_name: "ФИО заявителя", "Citizen's name";
    citizen_create: "Создать и привязать", "Create and link";
    citizen_pick: "Выбрать", "Pick";
    citizen_none_found: "Никого не нашли. Создайте новую карточку.", "Nobody found. Create a new card.";
    citizen_name_needed: "Укажите ФИО заявителя.", "Give the citizen's name.";
    citizen_unknown: "Заявитель по этому номеру не найден.", "No citizen found for this number.";
    flags: "Особые отметки", "Flags";
    no_flags: "нет", "none";
    calls_30d: "Звонков за 30 дней", "Calls in the last 30 days";
    open_appeals: "Открытые обращения", "Open appeals";
    earlier_appeals: "Прежние обращения", "Earlier appeals";
    none: "нет", "none";
    ivr_path: "Путь в меню", "Menu path";
    waited: "Ожидание", "Waited";
    seconds: "с", "s";
    queue: "Очередь", "Queue";
    appeal_form: "Обращение", "Appeal";
    service: "Услуга", "Service";
    district: "Район", "District";
    address: "Адрес", "Address";
    notes: "Суть обращения", "Notes";
    disposition: "Итог звонка", "Disposition";
    organisation: "Куда направить", "Send to";
    choose: "— выберите —", "— choose —";
    saved: "Сохранено", "Saved";
    saving: "Сохраняется…", "Saving…";
    unsaved: "Не сохранено: нет связи. Текст сохранён в браузере, повторим автоматически.", "Not saved: no connection. Kept in the browser; retrying.";
    save_refused: "Не сохранено", "Not saved";
    save_after_answer: "Текст сохранён в браузере; в обращение он попадёт, как только звонок будет принят.", "Kept in the browser; it goes into the appeal once the call is answered.";
    save_now: "Сохранить", "Save";
    forward_partner: "Передать в партнёрский центр", "Forward to the partner centre";
    transfer: "Перевести звонок", "Transfer the call";
    to_queue: "В очередь", "To a queue";
    to_operator: "Коллеге", "To a colleague";
    to_org: "В организацию", "To an organisation";
    transfer_btn: "Перевести", "Transfer";
    whose_desk: "Рабочее место оператора", "Desk of the operator";
    open_desk: "Открыть", "Open";
    read_only: "Только просмотр: действия доступны самому оператору и на мониторе очередей.", "View only: the operator acts here; supervisors act on the queue board.";
    choose_operator: "Выберите оператора, чьё рабочее место открыть.", "Choose the operator whose desk to open.";
    no_org_phones: "В справочнике нет телефонов организаций.", "The directory has no organisation phones.";
    transfer_sent: "Звонок переводится", "Transferring";
    disposition_needed: "Укажите итог звонка, прежде чем принять следующий.", "Give the disposition before the next call.";
    disposition_hold: "Поствызывная обработка: новых звонков не будет, пока не сохранён итог звонка.", "After-call work: no new calls until the call's disposition is saved.";
    worklists: "Мои списки", "My worklists";
    wl_mine: "Мои обращения в работе", "My open appeals";
    wl_due: "Срок сегодня", "Due today";
    wl_missed: "Пропущенные звонки", "Missed callers";
    wl_callbacks: "Обратные звонки", "Callbacks";
    empty: "Пусто", "Empty";
    today: "Сегодня", "Today";
    my_figures: "Мои показатели за сегодня", "My figures today";
    answered: "Принято", "Answered";
    abandoned: "Потеряно", "Abandoned";
    avg_talk: "Средний разговор, с", "Average talk, s";
    avg_wait: "Среднее ожидание, с", "Average wait, s";
    calls: "Звонков", "Calls";
    board_title: "Монитор очередей", "Queue board";
    waiting_now: "Ждут сейчас", "Waiting now";
    longest_wait: "Дольше всех ждёт, с", "Longest wait, s";
    service_level: "Уровень обслуживания", "Service level";
    target: "цель", "target";
    within: "за", "within";
    caller: "Звонящий", "Caller";
    nobody_waits: "Никто не ждёт", "Nobody is waiting";
    operators: "Операторы", "Operators";
    operator: "Оператор", "Operator";
    reason: "Причина", "Reason";
    actions: "Действия", "Actions";
    act_pause: "Пауза", "Pause";
    act_unpause: "Снять паузу", "Unpause";
    act_logout: "Вывести", "Log out";
    reassign: "Передать обращение", "Reassign an appeal";
    appeal_no: "Номер обращения", "Appeal number";
    to_whom: "Кому", "To whom";
    reassign_btn: "Передать", "Reassign";
    done_ok: "Готово", "Done";
    registry_title: "Реестр обращений", "Appeal registry";
    search: "Поиск", "Search";
    search_q: "Номер телефона, ФИО, адрес или слова из записи", "Phone number, name, address or words of the notes";
    status: "Статус", "Status";
    any: "любой", "any";
    date_from: "С даты", "From";
    date_to: "По дату", "To";
    date_placeholder: "дд.мм.гггг", "dd.mm.yyyy";
    date_hint: "Даты — в виде дд.мм.гггг, например 06.12.2026.", "Dates as dd.mm.yyyy, e.g. 06.12.2026.";
    line: "Линия", "Line";
    find: "Найти", "Find";
    found: "Найдено", "Found";
    more_than: "более", "more than";
    nothing_found: "Ничего не найдено. Измените условия поиска.", "Nothing found. Change the search.";
    arrived: "Поступило", "Arrived";
    outcome: "Итог", "Outcome";
    category: "Тема", "Category";
    export_csv: "Выгрузить CSV", "Export CSV";
    export_xlsx: "Выгрузить Excel", "Export Excel";
    next_page: "Дальше", "Next";
    prev_page: "Назад", "Back";
    appeal_title: "Обращение", "Appeal";
    timeline: "История", "Timeline";
    answered_at: "Ответ оператора", "Answered";
    ended_at: "Завершён", "Ended";
    talk: "Разговор, с", "Talk, s";
    recording: "Запись разговора", "Recording";
    listen: "Прослушать", "Listen";
    citizen_title: "Карточка заявителя", "Citizen card";
    phones: "Телефоны", "Phones";
    birth_year: "Год рождения", "Birth year";
    categories: "Льготные категории", "Social categories";
    consent: "Согласие на обработку данных", "Consent to data processing";
    consent_given: "получено", "given";
    consent_none: "не получено", "not given";
    citizen_notes: "Заметки", "Notes";
    until: "до", "until";
    open_card: "Открыть карточку", "Open the card";
    citizen_several: "С этого номера несколько заявителей — выберите карточку:", "Several citizens have this number; choose the card:";
    suggested_org: "Предлагается", "Suggested";
    field_refused: "Поле «{field}»: значение не принято, выберите из списка или исправьте", "{field}: the value was refused, choose from the list or correct it";
    reports_title: "Отчёт за день", "Daily report";
    day: "День", "Day";
    show: "Показать", "Show";
    by_hour: "Звонки по часам", "Calls by hour";
    by_category: "О чём звонят", "What people call about";
    by_line: "Звонки по линиям", "Calls by line";
    by_operator: "По операторам", "By operator";
    other: "другое", "other";
    org_title: "Заявки, направленные в организацию", "Applications sent to the organisation";
    comment: "Комментарий", "Comment";
    send_comment: "Добавить комментарий", "Add the comment";
    mark_done: "Отметить выполненной", "Mark done";
    take_in_work: "Взять в работу", "Take it on";
    back: "Вернуться", "Go back";
    error_try_again: "Не получилось. Проверьте связь и повторите.", "That did not work. Check the connection and try again.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_is_given_in_both_languages() {
        let ru: serde_json::Value = serde_json::from_str(&script_json(&RU)).unwrap();
        let en: serde_json::Value = serde_json::from_str(&script_json(&EN)).unwrap();
        for (k, v) in ru.as_object().unwrap() {
            assert!(!v.as_str().unwrap().is_empty(), "{k}");
            assert!(!en[k].as_str().unwrap().is_empty(), "{k}");
        }
    }
}
